package wipe

import (
	"testing"
)

// The parsers read bytes a drive (or a file) hands over; none may panic on any input. Seeds
// live in testdata/fuzz/<Target>/ and run as regression tests with every `go test`.

func FuzzParseATAIdentify(f *testing.F) {
	f.Add(ataIdentifyData(1<<20, 1, 1<<12|1<<13, 1<<1, 1|1<<3|1<<5))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := ParseATAIdentify(b)
		if err == nil && len(b) < 512 {
			t.Fatalf("accepted %d bytes", len(b))
		}
		if id.SectorSize != 0 && (id.SectorSize < 512 || id.SectorSize > 65536) {
			t.Fatalf("implausible sector size %d", id.SectorSize)
		}
	})
}

// FuzzParseNVMeIdentify fuzzes the head of the 4096-byte Identify structures (every field the
// parsers read lies in the first 1 KiB), zero-padded to full size here, and the input as it is
// (a short or long read from a drive). Fuzzing whole 4 KiB inputs kept the engine busy
// minimizing each new find for the rest of the run (257 executions in 60 s); a short input
// keeps it fuzzing.
func FuzzParseNVMeIdentify(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x01, 0x02})
	f.Fuzz(func(t *testing.T, b []byte) {
		checkNVMeIdentify(t, b)
		if len(b) < nvmeIdentifyLen {
			full := make([]byte, nvmeIdentifyLen)
			copy(full, b)
			checkNVMeIdentify(t, full)
		}
	})
}

func checkNVMeIdentify(t *testing.T, b []byte) {
	c, err := ParseNVMeIdentifyController(b)
	if err == nil && c.SanitizeCrypto != (c.SANICAP&1 != 0) {
		t.Fatal("SANICAP decoding inconsistent")
	}
	if err == nil && len(b) < nvmeIdentifyLen {
		t.Fatalf("controller identify accepted %d bytes", len(b))
	}
	ns, err := ParseNVMeIdentifyNamespace(b)
	if err == nil && (ns.BlockSize < 512 || ns.BlockSize > 1<<20) {
		t.Fatalf("implausible block size %d", ns.BlockSize)
	}
	ParseNVMeSanitizeStatus(b)
}

func FuzzParseSense(f *testing.F) {
	f.Add(ataSense(0x01, 0, 0x50, 1<<15, 0))
	f.Add([]byte{0x70, 0, 0x02, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x04, 0x1B, 0, 0x80, 0x40, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseATASense(b)
		ParseSCSISense(b)
		ParseSCSIOneCommand(b)
		ParseSCSIInquiry(b)
		ParseSCSIUnitSerial(b)
		scsiCheck(make([]byte, 16), SCSIReply{Status: 2, DriverStatus: 8, Sense: b})
	})
}
