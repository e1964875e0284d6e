package inventory

import (
	"context"
	"testing"
)

// A machine keeps the computer system behind its BMC (a blade of a chassis): stored, read with
// the machine and with its credentials, and kept when the BMC is stored again without one (a
// new address or password, a re-pin), so the blade never becomes another system of its chassis.
func TestBMCSystemIDKeptAcrossReplacement(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	box, _ := NewSecretBox(make([]byte, 32))
	m := mustMachine(t, s, NewMachine{Name: "blade3", State: "enrolled"})
	set := func(info BMCInfo) {
		t.Helper()
		if err := s.Update(ctx, func(tx *Tx) error { return tx.SetBMC(ctx, box, m.ID, info, "pw") }); err != nil {
			t.Fatal(err)
		}
	}
	check := func(want string) {
		t.Helper()
		got, _ := s.GetMachine(ctx, m.ID)
		cred, err := s.BMCCredentials(ctx, box, m.ID)
		if err != nil || got.BMC == nil || got.BMC.SystemID != want || cred.SystemID != want {
			t.Fatalf("system id: machine %+v, credentials %+v %v; want %q", got.BMC, cred.BMCInfo, err, want)
		}
	}
	set(BMCInfo{Address: "https://cmm", Username: "u", SystemID: "Blade3"})
	check("Blade3")
	set(BMCInfo{Address: "https://cmm-new", Username: "u", TLSFingerprint: "sha256:ab"}) // a re-pin
	check("Blade3")
	set(BMCInfo{Address: "https://cmm-new", Username: "u", SystemID: "Blade4"})
	check("Blade4")
}
