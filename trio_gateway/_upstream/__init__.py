"""The upstream side: pooled HTTP/1.1 connections, request forwarding, error mapping."""
