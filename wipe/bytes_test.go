package wipe

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// captured is one ioctl recorded from nvme-cli, hdparm or sg3_utils by
// testdata/capture/ioctlcap.c (see testdata/capture/capture.sh).
type captured struct {
	kind   string // nvme-admin or sgio
	fields map[string]string
	bytes  []byte // nvme: the 72-byte struct with pointers zeroed; sgio: the CDB
	data   []byte // sgio data-out (first 48 bytes)
}

func loadCapture(t *testing.T, name string) []captured {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name+".capture"))
	if err != nil {
		t.Fatalf("capture %s: %v (re-create with testdata/capture/capture.sh)", name, err)
	}
	defer f.Close()
	var out []captured
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		fs := strings.Fields(line)
		c := captured{kind: fs[0], fields: map[string]string{}}
		for _, kv := range fs[1 : len(fs)-1] {
			k, v, _ := strings.Cut(kv, "=")
			c.fields[k] = v
		}
		c.bytes, err = hex.DecodeString(fs[len(fs)-1])
		if err != nil {
			t.Fatalf("capture %s: bad hex in %q: %v", name, line, err)
		}
		if d, ok := c.fields["data"]; ok {
			c.data, _ = hex.DecodeString(d)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		t.Fatalf("capture %s is empty", name)
	}
	return out
}

func TestNVMeCommandsMatchNvmeCli(t *testing.T) {
	cases := []struct {
		capture string
		index   int // which ioctl of the capture (-1: last)
		cmd     NVMeAdminCmd
	}{
		{"nvme-id-ctrl", -1, NVMeIdentifyController()},
		{"nvme-id-ns", -1, NVMeIdentifyNamespace(1)},
		{"nvme-sanitize-crypto", -1, NVMeSanitize(NVMeSanitizeCryptoErase, false, 0, 0)},
		{"nvme-sanitize-block", -1, NVMeSanitize(NVMeSanitizeBlockErase, false, 0, 0)},
		{"nvme-sanitize-overwrite", -1, NVMeSanitize(NVMeSanitizeOverwrite, false, 0, 0)},
		{"nvme-sanitize-log", -1, NVMeSanitizeStatusLog()},
		// nvme-cli sends timeout_ms 0 (kernel default); Slate's executor passes a long
		// timeout, the only intended difference, so the builder is compared at 0.
		{"nvme-format-ses1", -1, NVMeFormat(1, 0, 1, 0)},
		{"nvme-format-ses2", -1, NVMeFormat(1, 0, 2, 0)},
		// nvme format first identifies the controller and the namespace, as Slate's probe does.
		{"nvme-format-ses2", 0, NVMeIdentifyController()},
		{"nvme-format-ses2", 1, NVMeIdentifyNamespace(1)},
	}
	for _, c := range cases {
		caps := loadCapture(t, c.capture)
		i := c.index
		if i < 0 {
			i = len(caps) - 1
		}
		got := c.cmd.Bytes()
		if len(got) != 72 {
			t.Fatalf("struct nvme_passthru_cmd is 72 bytes, Slate's is %d", len(got))
		}
		if caps[i].kind != "nvme-admin" || !bytes.Equal(got, caps[i].bytes) {
			t.Errorf("%s[%d]:\n slate   %x\n nvme-cli %x", c.capture, i, got, caps[i].bytes)
		}
		// nvme-cli passes a buffer exactly when the command moves data.
		if hasAddr := caps[i].fields["addr"] == "1"; hasAddr != (c.cmd.DataLen > 0) {
			t.Errorf("%s: nvme-cli addr=%v but Slate data_len=%d", c.capture, hasAddr, c.cmd.DataLen)
		}
	}
}

func TestATACommandsMatchHdparm(t *testing.T) {
	dirOf := map[Dir]string{DirNone: "-1", DirOut: "-2", DirIn: "-3"}
	type step struct {
		cmd  ATACommand
		dir  Dir
		data []byte
	}
	pw := func(enhanced bool) []byte {
		b, err := ATASecurityPasswordBlock("slate", false, enhanced)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := []struct {
		capture string
		steps   []step // compared with the capture's last len(steps) ioctls
	}{
		{"ata-identify", []step{{ATAIdentify(), DirIn, nil}}},
		{"ata-security-set-pass", []step{{ATASecuritySetPassword(), DirOut, pw(false)}}},
		{"ata-security-erase-enhanced", []step{{ATAIdentify(), DirIn, nil}, {ATASecurityErasePrepare(), DirNone, nil}, {ATASecurityEraseUnit(), DirOut, pw(true)}}},
		{"ata-security-erase", []step{{ATASecurityErasePrepare(), DirNone, nil}, {ATASecurityEraseUnit(), DirOut, pw(false)}}},
		{"ata-security-disable", []step{{ATASecurityDisable(), DirOut, pw(false)}}},
		{"ata-sanitize-crypto", []step{{ATAIdentify(), DirIn, nil}, {ATASanitize(ATASanitizeCryptoScramble, 0, 0), DirNone, nil}}},
		{"ata-sanitize-block", []step{{ATASanitize(ATASanitizeBlockErase, 0, 0), DirNone, nil}}},
		{"ata-sanitize-overwrite", []step{{ATASanitize(ATASanitizeOverwrite, 0, 0), DirNone, nil}}},
		{"ata-sanitize-status", []step{{ATASanitize(ATASanitizeStatusExt, 0, 0), DirNone, nil}}},
	}
	for _, c := range cases {
		caps := loadCapture(t, c.capture)
		if len(caps) < len(c.steps) {
			t.Fatalf("%s: %d ioctls captured, want at least %d", c.capture, len(caps), len(c.steps))
		}
		caps = caps[len(caps)-len(c.steps):]
		for i, s := range c.steps {
			got := s.cmd.CDB()
			if caps[i].kind != "sgio" || !bytes.Equal(got, caps[i].bytes) {
				t.Errorf("%s step %d CDB:\n slate  %x\n hdparm %x", c.capture, i, got, caps[i].bytes)
			}
			if caps[i].fields["dir"] != dirOf[s.dir] {
				t.Errorf("%s step %d: hdparm direction %s, Slate %s", c.capture, i, caps[i].fields["dir"], dirOf[s.dir])
			}
			if s.data != nil {
				if n := strconv.Itoa(len(s.data)); caps[i].fields["dxfer_len"] != n {
					t.Errorf("%s step %d: hdparm transfers %s bytes, Slate %s", c.capture, i, caps[i].fields["dxfer_len"], n)
				}
				if !bytes.Equal(s.data[:len(caps[i].data)], caps[i].data) {
					t.Errorf("%s step %d data:\n slate  %x\n hdparm %x", c.capture, i, s.data[:len(caps[i].data)], caps[i].data)
				}
			}
		}
	}
}

func TestSCSICommandsMatchSg3Utils(t *testing.T) {
	ow, err := SCSISanitizeOverwriteParams(1, false, make([]byte, 4))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		capture string
		cdb     []byte
		data    []byte
	}{
		{"scsi-sanitize-block", SCSISanitizeCDB(SCSISanitizeBlockErase, true, false, 0), nil},
		{"scsi-sanitize-crypto", SCSISanitizeCDB(SCSISanitizeCryptoErase, true, false, 0), nil},
		{"scsi-sanitize-overwrite", SCSISanitizeCDB(SCSISanitizeOverwrite, true, false, uint16(len(ow))), ow},
		{"scsi-rsoc-overwrite", SCSIReportOpCodeCDB(0x48, 1), nil},
		{"scsi-rsoc-block", SCSIReportOpCodeCDB(0x48, 2), nil},
		{"scsi-rsoc-crypto", SCSIReportOpCodeCDB(0x48, 3), nil},
	}
	for _, c := range cases {
		caps := loadCapture(t, c.capture)
		last := caps[len(caps)-1]
		if !bytes.Equal(c.cdb, last.bytes) {
			t.Errorf("%s CDB:\n slate       %x\n sg3_utils   %x", c.capture, c.cdb, last.bytes)
		}
		if c.data != nil && !bytes.Equal(c.data, last.data) {
			t.Errorf("%s parameter list:\n slate     %x\n sg3_utils %x", c.capture, c.data, last.data)
		}
	}
}
