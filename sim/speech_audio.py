"""Audio for the fake speech engine: real speech from espeak-ng where it is installed (a tone where it is not), in a
WAV that carries the text it speaks in its INFO comment (ICMT), so the fake's speech-to-text side can read it back.

That is the fake's whole "recognition": it reads the comment a WAV made by itself (or by the gateway relaying it)
carries, and for any other audio answers a fixed transcript. It recognises nothing.

Formats: wav and pcm always exact; flac through sox where sox is installed. mp3, opus and aac need encoders this
fake does not assume (no ffmpeg, lame or opusenc): it answers mp3 with real MPEG-1 Layer III frames of silence as
long as the speech, and opus / aac with streams of silence framed as Ogg Opus / ADTS AAC. Those two are shaped by
their specifications (magic bytes, framing, Ogg page CRCs) but not checked with a decoder here.
"""

from __future__ import annotations

import asyncio
import math
import shutil
import struct
import zlib

SAMPLE_RATE = 22_050  # espeak-ng's rate
COMMENT = b'ICMT'


def espeak_available() -> bool:
    return shutil.which('espeak-ng') is not None


async def synthesize(text: str, *, voice: str, speed: float, espeak: bool) -> bytes:
    """16-bit mono PCM at SAMPLE_RATE: espeak-ng's speech, or a tone of about the time it would take to say."""
    if espeak and espeak_available():
        pitch = zlib.crc32(voice.encode()) % 60 + 20  # each voice name its own pitch
        process = await asyncio.create_subprocess_exec(
            'espeak-ng',
            '--stdout',
            '--stdin',
            '-v',
            'en-us',
            '-s',
            str(round(175 * speed)),
            '-p',
            str(pitch),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        out, _ = await process.communicate(text.encode())
        pcm = _pcm_of(out)
        if process.returncode == 0 and pcm:
            return pcm
    return tone(seconds=max(0.3, len(text) * 0.06 / speed))


def tone(*, seconds: float, frequency: float = 440.0) -> bytes:
    count = int(seconds * SAMPLE_RATE)
    return b''.join(
        struct.pack('<h', int(8000 * math.sin(2 * math.pi * frequency * i / SAMPLE_RATE))) for i in range(count)
    )


def _pcm_of(wav: bytes) -> bytes:
    """The samples of espeak-ng's WAV (its header's sizes are placeholders when it writes to a pipe)."""
    position = 12
    while position + 8 <= len(wav):
        chunk, size = wav[position : position + 4], struct.unpack_from('<I', wav, position + 4)[0]
        if chunk == b'data':
            return wav[position + 8 :]
        position += 8 + size + (size & 1)
    return b''


def wav(pcm: bytes, *, text: str, rate: int = SAMPLE_RATE) -> bytes:
    """A WAV of `pcm` whose LIST/INFO/ICMT comment holds `text` (before the samples, so players skip it)."""
    comment = text.encode() + b'\x00'
    if len(comment) & 1:
        comment += b'\x00'
    info = b'INFO' + COMMENT + struct.pack('<I', len(comment)) + comment
    fmt = struct.pack('<HHIIHH', 1, 1, rate, rate * 2, 2, 16)
    body = (
        b'WAVE'
        + b'fmt '
        + struct.pack('<I', len(fmt))
        + fmt
        + b'LIST'
        + struct.pack('<I', len(info))
        + info
        + b'data'
        + struct.pack('<I', len(pcm))
        + pcm
    )
    return b'RIFF' + struct.pack('<I', len(body)) + body


def wav_comment(data: bytes) -> str | None:
    """The ICMT comment of a WAV, if it has one."""
    if data[:4] != b'RIFF' or data[8:12] != b'WAVE':
        return None
    position = 12
    while position + 8 <= len(data):
        chunk, size = data[position : position + 4], struct.unpack_from('<I', data, position + 4)[0]
        body = data[position + 8 : position + 8 + size]
        if chunk == b'LIST' and body[:4] == b'INFO':
            inner = 4
            while inner + 8 <= len(body):
                sub, length = body[inner : inner + 4], struct.unpack_from('<I', body, inner + 4)[0]
                if sub == COMMENT:
                    return body[inner + 8 : inner + 8 + length].rstrip(b'\x00').decode('utf-8', 'replace')
                inner += 8 + length + (length & 1)
        if chunk == b'data':
            return None
        position += 8 + size + (size & 1)
    return None


async def encode(pcm: bytes, fmt: str, *, text: str) -> bytes:
    """`pcm` in the response format asked for (see the module's note on mp3, opus and aac)."""
    seconds = len(pcm) / 2 / SAMPLE_RATE
    if fmt == 'pcm':
        return pcm
    if fmt == 'wav':
        return wav(pcm, text=text)
    if fmt == 'flac' and shutil.which('sox'):
        process = await asyncio.create_subprocess_exec(
            'sox',
            '-t',
            'wav',
            '-',
            '-t',
            'flac',
            '-',
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        out, _ = await process.communicate(wav(pcm, text=text))
        if process.returncode == 0 and out:
            return out
    if fmt == 'mp3':
        return silent_mp3(seconds)
    if fmt == 'opus':
        return silent_ogg_opus(seconds)
    if fmt == 'aac':
        return silent_adts(seconds)
    return wav(pcm, text=text)  # flac without sox: the WAV (documented in sim/README.md)


def silent_mp3(seconds: float) -> bytes:
    """MPEG-1 Layer III, 32 kbit/s, 32 kHz, mono: frames of 144 bytes (1152 samples each) whose side information is
    all zero, which decoders play as silence."""
    header = bytes([0xFF, 0xFB, 0x18, 0xC4])  # sync, MPEG-1, layer III, no CRC; 32 kbit/s, 32 kHz; mono
    frame = header + bytes(144 - len(header))
    return frame * max(1, math.ceil(seconds * 32_000 / 1152))


def silent_adts(seconds: float) -> bytes:
    """AAC-LC in ADTS frames (24 kHz mono), each carrying a silent single-channel element."""
    payload = bytes([0x01, 0x18, 0x20, 0x07])  # SCE, global gain, no sections, END (a silent frame)
    length = 7 + len(payload)
    header = bytes(
        [
            0xFF,
            0xF1,
            (1 << 6) | (6 << 2),
            (1 << 6) | (length >> 11),
            (length >> 3) & 0xFF,
            ((length & 7) << 5) | 0x1F,
            0xFC,
        ]
    )
    return (header + payload) * max(1, math.ceil(seconds * 24_000 / 1024))


def silent_ogg_opus(seconds: float) -> bytes:
    """Ogg Opus (RFC 7845): the OpusHead and OpusTags pages, then 20 ms silent packets, 50 to a page."""
    serial = 0x4D52  # "MR"
    head = b'OpusHead' + struct.pack('<BBHIhB', 1, 1, 312, 48_000, 0, 0)
    vendor = b'mindrouter-sim'
    tags = b'OpusTags' + struct.pack('<I', len(vendor)) + vendor + struct.pack('<I', 0)
    pages = [
        _ogg_page([head], granule=0, serial=serial, sequence=0, flags=0x02),
        _ogg_page([tags], granule=0, serial=serial, sequence=1, flags=0),
    ]
    packets = max(1, math.ceil(seconds / 0.02))
    silence = b'\xf8\xff\xfe'  # CELT 20 ms frame, code 0: the standard packet of silence
    sequence, granule = 2, 0
    for start in range(0, packets, 50):
        count = min(50, packets - start)
        granule += count * 960
        last = start + count >= packets
        pages.append(
            _ogg_page(
                [silence] * count, granule=granule + 312, serial=serial, sequence=sequence, flags=0x04 if last else 0
            )
        )
        sequence += 1
    return b''.join(pages)


def _ogg_page(packets: list[bytes], *, granule: int, serial: int, sequence: int, flags: int) -> bytes:
    lacing = b''.join(bytes([255] * (len(p) // 255) + [len(p) % 255]) for p in packets)
    header = (
        b'OggS' + bytes([0, flags]) + struct.pack('<qIII', granule, serial, sequence, 0) + bytes([len(lacing)]) + lacing
    )
    page = header + b''.join(packets)
    crc = _ogg_crc(page)
    return page[:22] + struct.pack('<I', crc) + page[26:]


def _ogg_crc(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc
