package redfish

import (
	"strings"
	"testing"
)

func TestParseBIOSProfile(t *testing.T) {
	p, err := ParseBIOSProfile([]byte(`{"name":" plant ","version":"2","attributes":{"ProcCoreDisable":2,"BootMode":"Uefi","X":true}}`))
	if err != nil || p.Name != "plant" || p.Attributes["ProcCoreDisable"] != float64(2) {
		t.Fatalf("%+v %v", p, err)
	}
	for body, want := range map[string]string{
		`{"name":"","attributes":{"A":1}}`:            "name is empty",
		`{"name":"p","attributes":{}}`:                "no attributes",
		`{"name":"p","attributes":{"A":{"b":1}}}`:     "strings, numbers or booleans",
		`{"name":"p","attributes":{"A":[1]}}`:         "strings, numbers or booleans",
		`{"name":"p","attributes":{"A":null}}`:        "strings, numbers or booleans",
		`{"name":"p","attributes":{"A":1},"extra":1}`: "unknown field",
		`{"name":"p","attributes":{"A":1}} {}`:        "trailing data",
		`{"name":"p","attributes":{"":1}}`:            "empty or too long",
		`not json`:                                    "BIOS profile",
	} {
		if _, err := ParseBIOSProfile([]byte(body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", body, err, want)
		}
	}
}

func TestParseFirmwareBaseline(t *testing.T) {
	b, err := ParseFirmwareBaseline([]byte(`{"name":"2026-11","components":[{"component":"BMC","version":"1.46","image_uri":"http://10.0.0.1/fw/bmc.bin"}]}`))
	if err != nil || len(b.Components) != 1 {
		t.Fatalf("%+v %v", b, err)
	}
	for body, want := range map[string]string{
		`{"name":"b","components":[]}`: "no components",
		`{"name":"b","components":[{"component":"BMC","version":"1","image_uri":"http://h/x"},{"component":"BMC","version":"2","image_uri":"http://h/y"}]}`: "twice",
		`{"name":"b","components":[{"component":"BMC","version":"","image_uri":"http://h/x"}]}`:                                                             "no version",
		`{"name":"b","components":[{"component":"BMC","version":"1","image_uri":"file:///x"}]}`:                                                             "not an http(s) URL",
	} {
		if _, err := ParseFirmwareBaseline([]byte(body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", body, err, want)
		}
	}
}

func FuzzParseProfiles(f *testing.F) {
	f.Add([]byte(`{"name":"plant","attributes":{"ProcCoreDisable":2,"BootMode":"Uefi"}}`))
	f.Add([]byte(`{"name":"b","components":[{"component":"BMC","version":"1","image_uri":"http://h/x"}]}`))
	f.Add([]byte(`{"name":"p","attributes":{"A":1e999}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, err := ParseBIOSProfile(b); err == nil {
			if p.Name == "" || len(p.Attributes) == 0 {
				t.Fatalf("invalid profile accepted: %+v", p)
			}
			_ = diffBIOS(map[string]any{"A": 1.0}, nil, p)
		}
		if fb, err := ParseFirmwareBaseline(b); err == nil && (fb.Name == "" || len(fb.Components) == 0) {
			t.Fatalf("invalid baseline accepted: %+v", fb)
		}
	})
}
