package watcher

import (
	"bytes"
	"os"
	"unicode/utf8"
)

// binarySample is how many leading bytes decide whether a file is text.
const binarySample = 1024

// binaryMagic are the starts of binary formats that end up beside metric
// files (images, archives, checkpoints, databases, event files).
var binaryMagic = []struct {
	prefix []byte
	name   string
}{
	{[]byte("\x89PNG\r\n\x1a\n"), "PNG image"},
	{[]byte("\xff\xd8\xff"), "JPEG image"},
	{[]byte("GIF87a"), "GIF image"}, {[]byte("GIF89a"), "GIF image"},
	{[]byte("\x1f\x8b"), "gzip"},
	{[]byte("PK\x03\x04"), "zip"},
	{[]byte("%PDF-"), "PDF"},
	{[]byte("\x7fELF"), "ELF executable"},
	{[]byte("SQLite format 3\x00"), "SQLite database"},
	{[]byte("PAR1"), "parquet"},
	{[]byte("BZh"), "bzip2"},
	{[]byte("\xfd7zXZ\x00"), "xz"},
	{[]byte("\x28\xb5\x2f\xfd"), "zstd"},
	{[]byte("\x93NUMPY"), "numpy array"},
	{[]byte("RIFF"), "RIFF (WAV/AVI/WebP)"},
}

// binaryFile reports why f does not look like text ("" when it does): a
// known binary signature, or more than one byte in ten of its first
// binarySample bytes being a control character or not UTF-8. NUL bytes
// alone do not make a file binary — a text file with a zero-filled region
// (a crash) is still read, and the parser steps over the padding.
func binaryFile(f *os.File) string {
	buf := make([]byte, binarySample)
	n, _ := f.ReadAt(buf, 0)
	b := buf[:n]
	for _, m := range binaryMagic {
		if bytes.HasPrefix(b, m.prefix) {
			return m.name
		}
	}
	text := bytes.ReplaceAll(b, []byte{0}, nil)
	if len(text) == 0 {
		return "" // only NULs so far: wait for text
	}
	odd := 0
	for i := 0; i < len(text); {
		c := text[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != 0x1b || c == 0x7f {
				odd++
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(text[i:])
		if r == utf8.RuneError && size <= 1 && len(text)-i >= utf8.UTFMax {
			odd++ // not UTF-8 (a rune cut by the sample's end is not counted)
		}
		i += max(size, 1)
	}
	if odd*10 > len(text) {
		return "not text"
	}
	return ""
}
