"""What a chat attachment is and what text the model gets from it (core.chat.files.extract_text): decided from
the bytes, with real PDF and DOCX files built here by hand, and clear refusals for everything else."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import pytest

from core.chat import files
from core.errors import InvalidRequest, RequestTooLarge
from core.models import AttachmentKind


def minimal_pdf(*page_texts: str) -> bytes:
    """A valid PDF with one page per text (none: a page without text, like a scan), Helvetica, correct xref."""
    pages = page_texts or ('',)
    count = len(pages)
    # objects: 1 catalog, 2 pages, 3 font, then per page: page object, content stream
    objects: list[bytes] = [
        b'<< /Type /Catalog /Pages 2 0 R >>',
        b'<< /Type /Pages /Kids [' + b' '.join(b'%d 0 R' % (4 + 2 * i) for i in range(count))
        + b'] /Count %d >>' % count,
        b'<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>',
    ]
    for i, text in enumerate(pages):
        content = f'BT /F1 18 Tf 72 720 Td ({text}) Tj ET'.encode('latin-1') if text else b''
        objects.append(b'<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R '
                       b'/Resources << /Font << /F1 3 0 R >> >> >>' % (5 + 2 * i))
        objects.append(b'<< /Length %d >>\nstream\n' % len(content) + content + b'\nendstream')
    out = bytearray(b'%PDF-1.4\n')
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b'%d 0 obj\n' % number + body + b'\nendobj\n'
    xref = len(out)
    out += b'xref\n0 %d\n0000000000 65535 f \n' % (len(objects) + 1)
    out += b''.join(b'%010d 00000 n \n' % offset for offset in offsets)
    out += b'trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n' % (len(objects) + 1, xref)
    return bytes(out)


_W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def minimal_docx(body_xml: str) -> bytes:
    """A DOCX (a zip with [Content_Types].xml and word/document.xml) whose body is `body_xml`."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, 'w', zipfile.ZIP_DEFLATED) as archive:
        archive.writestr('[Content_Types].xml',
                         '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/'
                         'package/2006/content-types"><Override PartName="/word/document.xml" ContentType="'
                         f'{files.DOCX_TYPE}.main+xml"/></Types>')
        archive.writestr('word/document.xml',
                         f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document {_W}><w:body>'
                         f'{body_xml}<w:sectPr/></w:body></w:document>')
    return buffer.getvalue()


def para(text: str) -> str:
    return f'<w:p><w:r><w:t xml:space="preserve">{text}</w:t></w:r></w:p>'


def png(width: int = 1, height: int = 1) -> bytes:
    """A valid PNG (greyscale, all black)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
    raw = b''.join(b'\x00' + b'\x00' * width for _ in range(height))
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0))
            + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))


def test_a_pdf_with_text_gives_its_text_page_by_page() -> None:
    pdf = minimal_pdf('Hello from page one', 'The answer is 42')
    result = files.extract_text('report.pdf', pdf)
    assert (result.kind, result.media_type, result.suffix) == (AttachmentKind.text, 'application/pdf', '.pdf')
    assert 'Hello from page one' in result.text and 'The answer is 42' in result.text
    assert result.text.index('Hello') < result.text.index('answer')
    assert result.total_chars == len(result.text) and not result.truncated


def test_the_content_decides_not_the_name() -> None:
    assert files.extract_text('notes.txt', minimal_pdf('Really a PDF')).media_type == 'application/pdf'
    assert files.extract_text('photo.pdf', png()).kind == AttachmentKind.image
    assert files.extract_text('script.png', b'print("hi")\n').kind == AttachmentKind.text


def test_a_scanned_pdf_without_text_is_refused_clearly() -> None:
    with pytest.raises(InvalidRequest, match=r'scan\.pdf has no text layer \(a scanned PDF\?\)'):
        files.extract_text('scan.pdf', minimal_pdf())


def test_a_damaged_pdf_is_refused_clearly() -> None:
    with pytest.raises(InvalidRequest, match=r'broken\.pdf could not be read as a PDF'):
        files.extract_text('broken.pdf', b'%PDF-1.4\n' + b'\x00garbage' * 50)


def test_a_docx_gives_its_paragraphs_and_table_cells_in_order() -> None:
    table = ('<w:tbl><w:tblPr/><w:tr><w:tc><w:tcPr/>' + para('Name') + '</w:tc><w:tc>' + para('Score')
             + '</w:tc></w:tr><w:tr><w:tc>' + para('Ada') + '</w:tc><w:tc>' + para('97') + '</w:tc></w:tr></w:tbl>')
    tabbed = '<w:p><w:r><w:t>Split</w:t><w:tab/><w:t>by tab</w:t></w:r><w:del><w:r><w:delText>gone</w:delText>' \
             '</w:r></w:del></w:p>'
    docx = minimal_docx(para('Quarterly report') + table + tabbed + para('The end &amp; more'))
    result = files.extract_text('report.docx', docx)
    assert result.kind == AttachmentKind.text and result.media_type == files.DOCX_TYPE
    assert result.text == 'Quarterly report\nName | Score\nAda | 97\nSplit\tby tab\nThe end & more'


def test_a_docx_without_text_and_other_zips_are_refused() -> None:
    with pytest.raises(InvalidRequest, match='has no text'):
        files.extract_text('empty.docx', minimal_docx('<w:p/>'))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, 'w') as archive:
        archive.writestr('data.csv', 'a,b\n1,2\n')
    with pytest.raises(InvalidRequest, match=r'data\.zip is a ZIP archive .*Supported: text and code'):
        files.extract_text('data.zip', buffer.getvalue())


def test_utf8_code_is_text_with_a_media_type_from_its_extension() -> None:
    code = 'def grüße() -> str:\r\n    return "héllo ✓"\r\n'.encode()
    result = files.extract_text('app.py', code)
    assert (result.kind, result.media_type, result.suffix) == (AttachmentKind.text, 'text/x-python', '.txt')
    assert result.text == 'def grüße() -> str:\n    return "héllo ✓"\n'
    assert files.extract_text('Makefile', b'all:\n\tcc main.c\n').media_type == 'text/plain'
    assert files.extract_text('data.csv', '\ufeffa,b\n1,2\n'.encode()).text == 'a,b\n1,2\n'  # BOM dropped
    assert files.extract_text('utf16.txt', 'hi there'.encode('utf-16')).text == 'hi there'


def test_text_that_is_not_utf8_is_refused_with_a_hint() -> None:
    with pytest.raises(InvalidRequest, match=r'legacy\.csv is not UTF-8 text: save it with UTF-8 encoding'):
        files.extract_text('legacy.csv', 'naïve;café\n'.encode('cp1252'))


def test_a_binary_file_that_is_no_image_is_refused_listing_what_is_supported() -> None:
    with pytest.raises(InvalidRequest) as refused:
        files.extract_text('program.exe', b'MZ\x90\x00\x03\x00\x00\x00' + bytes(range(256)) * 4)
    assert refused.value.param == 'file'
    assert 'program.exe is not a file that can be attached' in refused.value.message
    assert 'PDF' in refused.value.message and 'PNG, JPEG, GIF, WebP' in refused.value.message
    with pytest.raises(InvalidRequest, match=r'old Office file'):
        files.extract_text('old.doc', b'\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1' + bytes(500))
    with pytest.raises(InvalidRequest, match=r'BMP image, which cannot be attached'):
        files.extract_text('pic.bmp', b'BM' + b'\x00' * 4 + b'\x00\x00\x00\x00' + b'\x36' + bytes(40))


def test_an_oversized_file_is_refused_before_anything_is_read() -> None:
    with pytest.raises(RequestTooLarge, match=r'big\.txt is 10\.0 MiB: files up to 10 MiB') as refused:
        files.extract_text('big.txt', b'a' * (files.MAX_UPLOAD_BYTES + 1))
    assert refused.value.status_code == 413
    assert files.extract_text('max.txt', b'a' * files.MAX_UPLOAD_BYTES).truncated  # exactly the limit is fine


def test_an_empty_file_is_refused() -> None:
    with pytest.raises(InvalidRequest, match=r'empty\.txt is empty'):
        files.extract_text('empty.txt', b'')
    with pytest.raises(InvalidRequest, match='only whitespace'):
        files.extract_text('blank.md', b'  \n\n\t')


def test_long_text_is_cut_with_a_note() -> None:
    result = files.extract_text('long.txt', b'x' * (files.MAX_EXTRACTED_CHARS + 5))
    assert result.truncated and result.total_chars == files.MAX_EXTRACTED_CHARS + 5
    assert result.text.startswith('x' * files.MAX_EXTRACTED_CHARS + '\n[truncated: the file has 200,005 characters')


@pytest.mark.parametrize(('data', 'media_type', 'suffix'), [
    (png(), 'image/png', '.png'),
    (b'\xff\xd8\xff\xe0' + bytes(60), 'image/jpeg', '.jpg'),
    (b'GIF89a' + bytes(60), 'image/gif', '.gif'),
    (b'RIFF\x24\x00\x00\x00WEBPVP8 ' + bytes(60), 'image/webp', '.webp'),
])
def test_images_are_kept_as_images(data: bytes, media_type: str, suffix: str) -> None:
    result = files.extract_text('picture', data)
    assert (result.kind, result.media_type, result.suffix, result.text, result.total_chars) == \
        (AttachmentKind.image, media_type, suffix, '', 0)


def test_the_client_filename_is_only_ever_a_display_name() -> None:
    assert files.display_name('../../etc/passwd') == 'passwd'
    assert files.display_name('C:\\Users\\me\\[draft]\nreport.pdf') == '(draft) report.pdf'
    assert files.display_name('') == 'file'
    long = files.display_name('a' * 300 + '.py')
    assert len(long) == files.FILENAME_MAX and long.endswith('.py')


def test_paths_outside_the_chat_folder_are_refused(tmp_path: Path) -> None:
    from core.config import get_settings

    settings = get_settings()
    assert files.resolve('chat/1/abc.txt', settings).is_relative_to(settings.resolved_artifact_path.resolve())
    for bad in ('chat/../secret_key', '../mindrouter.db', '/etc/passwd', 'chat'):
        with pytest.raises(ValueError, match='outside the chat folder'):
            files.resolve(bad, settings)
