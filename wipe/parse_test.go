package wipe

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// seed reads a fuzz seed file back (go test fuzz v1, one []byte).
func seed(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/fuzz/" + path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	lit := strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")")
	s, err := strconv.Unquote(lit)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(s)
}

// nvmeSeed is an Identify seed zero-padded to its 4096 bytes: the seeds are stored without
// their trailing zeros, as FuzzParseNVMeIdentify fuzzes them (short inputs keep it fuzzing).
func nvmeSeed(t *testing.T, path string) []byte {
	t.Helper()
	b := make([]byte, nvmeIdentifyLen)
	if n := copy(b, seed(t, path)); n > 1024 {
		t.Fatalf("%s: %d bytes; store Identify seeds without trailing zeros", path, n)
	}
	return b
}

func TestParseATAIdentifyFields(t *testing.T) {
	id, err := ParseATAIdentify(seed(t, "FuzzParseATAIdentify/frozen-ssd"))
	if err != nil {
		t.Fatal(err)
	}
	if !id.SecuritySupported || !id.SecurityFrozen || !id.EnhancedErase || id.SecurityEnabled || id.SecurityLocked ||
		!id.SanitizeSupported || !id.SanitizeCrypto || !id.SanitizeOverwrite || !id.SanitizeBlock ||
		id.RotationRate != 1 || id.Sectors != 1<<28 || id.SectorSize != 4096 || id.Model != "QEMU HARDDISK" || id.Serial != "QM00005" {
		t.Fatalf("frozen SSD identify: %+v", id)
	}
	id, err = ParseATAIdentify(seed(t, "FuzzParseATAIdentify/qemu-ahci"))
	if err != nil || id.SecuritySupported || id.SanitizeSupported || id.Sectors != 131072 {
		t.Fatalf("QEMU AHCI identify: %+v %v", id, err)
	}
	if _, err := ParseATAIdentify(seed(t, "FuzzParseATAIdentify/checksummed")); err != nil {
		t.Fatalf("good checksum rejected: %v", err)
	}
	bad := seed(t, "FuzzParseATAIdentify/checksummed")
	bad[20] ^= 1
	if _, err := ParseATAIdentify(bad); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("bad checksum accepted: %v", err)
	}
	if _, err := ParseATAIdentify(seed(t, "FuzzParseATAIdentify/atapi")); err == nil {
		t.Fatal("ATAPI identify accepted")
	}
}

func TestParseNVMeFields(t *testing.T) {
	c, err := ParseNVMeIdentifyController(nvmeSeed(t, "FuzzParseNVMeIdentify/qemu-ctrl"))
	if err != nil || !c.FormatSupported || c.SanitizeCrypto || c.SanitizeBlock || c.CryptoFormat || c.Serial != "deadbeef" || c.Namespaces != 1 {
		t.Fatalf("QEMU controller: %+v %v", c, err)
	}
	ns, err := ParseNVMeIdentifyNamespace(nvmeSeed(t, "FuzzParseNVMeIdentify/ns-lbaf1-4k"))
	if err != nil || ns.BlockSize != 4096 || ns.LBAFormat != 1 || ns.SizeBlocks != 131072 {
		t.Fatalf("namespace: %+v %v", ns, err)
	}
	if _, err := ParseNVMeIdentifyNamespace(nvmeSeed(t, "FuzzParseNVMeIdentify/ns-bad-flbas")); err == nil {
		t.Fatal("LBA format index beyond NLBAF accepted")
	}
	st, err := ParseNVMeSanitizeStatus(seed(t, "FuzzParseNVMeIdentify/sanitize-log"))
	if err != nil || st.Status != NVMeSanitizeInProgress || st.Progress != 0x8000 || st.EstBlock != 60 || st.EstCrypto != 5 {
		t.Fatalf("sanitize log: %+v %v", st, err)
	}
}

func TestParseSenseFields(t *testing.T) {
	r, ok := ParseATASense(seed(t, "FuzzParseSense/ata-status-return"))
	if !ok || r.Count != 0x8000 || r.Status != 0x50 || !ParseATASanitizeStatus(r).Completed {
		t.Fatalf("ATA status return: %+v", r)
	}
	if _, err := scsiCheck(make([]byte, 16), SCSIReply{Status: 2, DriverStatus: 8, Sense: seed(t, "FuzzParseSense/ata-abort")}); !isUnsupported(err) {
		t.Fatalf("ATA abort not seen as unsupported: %v", err)
	}
	s, ok := ParseSCSISense(seed(t, "FuzzParseSense/fixed-sanitize-progress"))
	if !ok || s.Key != 2 || s.ASC != 4 || s.ASCQ != 0x1b || s.Progress != 0x4000 {
		t.Fatalf("sanitize progress sense: %+v", s)
	}
	if sn, err := ParseSCSIUnitSerial(seed(t, "FuzzParseSense/vpd80")); err != nil || sn != "SER123" {
		t.Fatalf("unit serial %q %v", sn, err)
	}
}
