"""The unary-gRPC HTTP/2 codec's pure parts: frame parsing in any chunking, header encoding."""

from __future__ import annotations

import itertools

import hpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugin_drivers.grpc import h2codec
from plugin_drivers.grpc.h2codec import ErrorCode, Flag, Frame, FrameParser, FrameType

header_names = st.from_regex(rb"\A[a-z][a-z0-9-]{0,30}\Z")
header_values = st.binary(max_size=300)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def parse_all(data: bytes, cuts: list[int], max_frame: int = 16_384) -> list[Frame]:
    parser = FrameParser(max_frame)
    frames: list[Frame] = []
    for chunk in chunked(data, cuts):
        frames.extend(parser.feed(chunk))
    return frames


plain_frames = st.tuples(
    st.sampled_from([FrameType.DATA, FrameType.PING, FrameType.WINDOW_UPDATE, 0x42]),
    st.integers(0, 1),
    st.integers(0, 2**31 - 1),
    st.binary(max_size=2000),
)


@given(frames=st.lists(plain_frames, max_size=8), cuts=st.lists(st.integers(0, 20_000)))
def test_frames_parse_back_in_any_chunking(
    frames: list[tuple[int, int, int, bytes]], cuts: list[int]
) -> None:
    wire = b"".join(h2codec.frame(t, f, s, p) for t, f, s, p in frames)
    parsed = parse_all(wire, cuts)
    assert [(f.type, f.flags, f.stream_id, f.payload) for f in parsed] == frames
    # DATA counts its whole payload against flow control.
    for got, (type_, _, _, payload) in zip(parsed, frames, strict=True):
        if type_ == FrameType.DATA:
            assert got.flow == len(payload)


@given(
    block=st.binary(min_size=1, max_size=5000),
    frame_size=st.integers(16, 2000),
    end_stream=st.booleans(),
    cuts=st.lists(st.integers(0, 20_000)),
)
def test_headers_with_continuations_join_into_one_block(
    block: bytes, frame_size: int, end_stream: bool, cuts: list[int]
) -> None:
    wire = h2codec.headers_frames(7, block, end_stream=end_stream, max_frame_size=frame_size)
    wire += h2codec.frame(FrameType.PING, 0, 0, b"12345678")
    parsed = parse_all(wire, cuts)
    assert len(parsed) == 2
    headers, ping = parsed
    assert headers.type == FrameType.HEADERS
    assert headers.stream_id == 7
    assert headers.payload == block
    assert headers.flags & Flag.END_HEADERS
    assert bool(headers.flags & Flag.END_STREAM) == end_stream
    assert ping.payload == b"12345678"


@given(data=st.binary(max_size=40_000), frame_size=st.integers(16_384, 20_000))
def test_data_frames_split_to_the_frame_size(data: bytes, frame_size: int) -> None:
    wire = h2codec.data_frames(3, data, end_stream=True, max_frame_size=frame_size)
    parsed = parse_all(wire, [], max_frame=frame_size)
    assert b"".join(f.payload for f in parsed) == data
    assert all(len(f.payload) <= frame_size for f in parsed)
    assert [bool(f.flags & Flag.END_STREAM) for f in parsed] == [False] * (len(parsed) - 1) + [True]


def test_padding_and_priority_are_stripped() -> None:
    data = h2codec.frame(FrameType.DATA, Flag.PADDED, 1, b"\x03abc\x00\x00\x00")
    block = b"\x88"
    headers = h2codec.frame(
        FrameType.HEADERS,
        Flag.PADDED | Flag.PRIORITY | Flag.END_HEADERS,
        1,
        b"\x02" + b"\x00\x00\x00\x00\x10" + block + b"\x00\x00",
    )
    got_data, got_headers = parse_all(data + headers, [])
    assert got_data.payload == b"abc"
    assert got_data.flow == 7  # the pad length byte and padding count too
    assert got_headers.payload == block


@pytest.mark.parametrize(
    ("wire", "code"),
    [
        (h2codec.frame(FrameType.DATA, 0, 1, b"x" * 16_385), ErrorCode.FRAME_SIZE_ERROR),
        (h2codec.frame(FrameType.CONTINUATION, Flag.END_HEADERS, 1, b""), ErrorCode.PROTOCOL_ERROR),
        (
            h2codec.frame(FrameType.HEADERS, 0, 1, b"\x88")
            + h2codec.frame(FrameType.DATA, 0, 1, b""),
            ErrorCode.PROTOCOL_ERROR,
        ),
        (h2codec.frame(FrameType.DATA, Flag.PADDED, 1, b"\x05ab"), ErrorCode.PROTOCOL_ERROR),
    ],
)
def test_protocol_errors(wire: bytes, code: ErrorCode) -> None:
    with pytest.raises(h2codec.H2ProtocolError) as info:
        FrameParser().feed(wire)
    assert info.value.code == code


@given(
    scheme=st.sampled_from([b"http", b"https"]),
    authority=header_values,
    path=header_values,
    timeout=st.from_regex(rb"\A[0-9]{1,8}[HMSmun]\Z"),
    metadata=st.lists(st.tuples(header_names, header_values), max_size=5),
)
def test_request_header_block_decodes_back(
    scheme: bytes,
    authority: bytes,
    path: bytes,
    timeout: bytes,
    metadata: list[tuple[bytes, bytes]],
) -> None:
    block = h2codec.request_header_block(
        scheme=scheme, authority=authority, path=path, user_agent=b"ua/1"
    )
    block += h2codec.timeout_field(timeout)
    block += b"".join(h2codec.literal_field(k, v) for k, v in metadata)
    decoder = hpack.Decoder()
    decoded = [(bytes(k), bytes(v)) for k, v in decoder.decode(block, raw=True)]
    assert decoded == [
        (b":method", b"POST"),
        (b":scheme", scheme),
        (b":path", path),
        (b":authority", authority),
        (b"te", b"trailers"),
        (b"content-type", b"application/grpc"),
        (b"user-agent", b"ua/1"),
        (b"grpc-timeout", timeout),
        *metadata,
    ]
    # Stateless: nothing entered the peer's dynamic table, so the block is neutral.
    assert len(decoder.header_table.dynamic_entries) == 0
    assert h2codec.is_table_neutral(block)


@given(
    headers=st.lists(st.tuples(header_names, header_values), min_size=1, max_size=6),
    huffman=st.booleans(),
)
def test_table_neutral_matches_what_the_decoder_does(
    headers: list[tuple[bytes, bytes]], huffman: bool
) -> None:
    encoder = hpack.Encoder()
    first = encoder.encode(headers, huffman=huffman)
    decoder = hpack.Decoder()
    decoder.decode(first, raw=True)
    entries = list(decoder.header_table.dynamic_entries)
    # A block that inserted something is not neutral; the repeat (all indexed) is.
    assert h2codec.is_table_neutral(first) == (entries == [])
    again = encoder.encode(headers)
    if h2codec.is_table_neutral(again):
        decoder.decode(again, raw=True)
        assert list(decoder.header_table.dynamic_entries) == entries


def test_table_size_update_is_not_neutral_and_cut_blocks_are_refused() -> None:
    assert not h2codec.is_table_neutral(h2codec.table_size_update(0))
    assert not h2codec.is_table_neutral(b"\x00\x05ab")  # literal name cut short
    assert h2codec.is_table_neutral(b"\x88\xbe")


def test_settings_and_goaway_payloads() -> None:
    wire = h2codec.settings_frame([(h2codec.Setting.MAX_FRAME_SIZE, 20_000)])
    (settings,) = FrameParser().feed(wire)
    assert h2codec.parse_settings(settings.payload) == [(5, 20_000)]
    (goaway,) = FrameParser().feed(h2codec.goaway_frame(9, ErrorCode.NO_ERROR))
    assert h2codec.parse_goaway(goaway.payload) == (9, 0)
    with pytest.raises(h2codec.H2ProtocolError):
        h2codec.parse_settings(b"\x00\x01")
