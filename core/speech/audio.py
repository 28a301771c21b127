"""Audio files recognised by their first bytes (never by their names or declared types), WAV durations, and the
media types of the formats a speech engine answers in.

An upload is accepted when its opening bytes are one of the containers speech engines decode (ffmpeg underneath
Speaches and vLLM): WAV, MP3, Ogg (Opus, Vorbis), FLAC, WebM/Matroska (a browser's MediaRecorder), MP4/M4A, AAC
(ADTS), AIFF, AMR, CAF.
"""

from __future__ import annotations

import struct

SNIFF_BYTES = 16  # enough of the file to tell every container below apart

# response_format -> media type, as OpenAI (and Kokoro-FastAPI) label them
SPEECH_MEDIA_TYPES = {
    'mp3': 'audio/mpeg',
    'opus': 'audio/ogg',  # Opus in an Ogg container, which is what engines send for "opus"
    'aac': 'audio/aac',
    'flac': 'audio/flac',
    'wav': 'audio/wav',
    'pcm': 'audio/pcm',  # raw 16-bit little-endian samples, 24 kHz mono, no header
}


def sniff(head: bytes) -> str | None:
    """The container of an audio file from its first bytes, or None when it is not audio we know."""
    if len(head) >= 12 and head[:4] == b'RIFF' and head[8:12] == b'WAVE':
        return 'wav'
    if head[:4] == b'fLaC':
        return 'flac'
    if head[:4] == b'OggS':
        return 'ogg'
    if head[:3] == b'ID3' or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0
                              and head[1] & 0x06 != 0):  # an MPEG audio frame (layer I-III)
        return 'mp3'
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:  # ADTS: sync word, layer 0
        return 'aac'
    if head[:4] == b'\x1a\x45\xdf\xa3':
        return 'webm'
    if len(head) >= 8 and head[4:8] == b'ftyp':
        return 'mp4'
    if len(head) >= 12 and head[:4] == b'FORM' and head[8:12] in (b'AIFF', b'AIFC'):
        return 'aiff'
    if head[:5] == b'#!AMR':
        return 'amr'
    if head[:4] == b'caff':
        return 'caf'
    return None


def wav_duration(data: bytes) -> float | None:
    """Seconds of audio in a PCM WAV file, from its header; None when the header does not say (or lies: a streamed
    WAV carries a placeholder size, so the data actually present is what counts)."""
    if sniff(data[:SNIFF_BYTES]) != 'wav':
        return None
    position, byte_rate = 12, 0
    while position + 8 <= len(data):
        chunk, size = data[position:position + 4], int(struct.unpack_from('<I', data, position + 4)[0])
        body = position + 8
        if chunk == b'fmt ' and size >= 16:
            byte_rate = int(struct.unpack_from('<I', data, body + 8)[0])
        elif chunk == b'data':
            if not byte_rate:
                return None
            present = min(size, len(data) - body)
            return present / byte_rate
        position = body + size + (size & 1)
    return None


def estimated_seconds(data: bytes) -> float:
    """Seconds of audio in an upload: exact for WAV; for compressed formats a guess at 16 kB/s (128 kbit/s), used
    only to size the request for the scheduler before the engine says how long it really was."""
    exact = wav_duration(data)
    return exact if exact is not None else len(data) / 16_000
