package inventory

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestFactsVersionsAndMachineFields(t *testing.T) {
	ctx := context.Background()
	s, _ := openTaskTestStore(t)
	m := taskTestMachine(t, s, "m1", "52:54:00:00:00:01")
	m2 := taskTestMachine(t, s, "m2", "52:54:00:00:00:02")

	if _, err := s.LatestFacts(ctx, m.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("no facts yet: want ErrNotFound, got %v", err)
	}
	put := func(id string, doc string, f FactFields) (int, []string, error) {
		var v int
		var w []string
		err := s.Update(ctx, func(tx *Tx) error {
			var err error
			v, w, err = tx.PutFacts(ctx, id, json.RawMessage(doc), f)
			return err
		})
		return v, w, err
	}
	if _, _, err := put(m.ID, `{nope`, FactFields{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad JSON: %v", err)
	}
	if _, _, err := put(m.ID, ``, FactFields{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty doc: %v", err)
	}
	v, w, err := put(m.ID, `{"a":1}`, FactFields{Serial: "SN1", SystemUUID: "u-1", Vendor: "QEMU", Model: "Standard PC", Arch: "x86_64", FirmwareMode: "bios"})
	if err != nil || v != 1 || len(w) != 0 {
		t.Fatalf("put 1: %d %v %v", v, w, err)
	}
	v, _, err = put(m.ID, `{"a":2}`, FactFields{FirmwareMode: "uefi"})
	if err != nil || v != 2 {
		t.Fatalf("put 2: %d %v", v, err)
	}
	got, _ := s.GetMachine(ctx, m.ID)
	if got.Serial != "SN1" || got.SystemUUID != "u-1" || got.Vendor != "QEMU" || got.Model != "Standard PC" ||
		got.Arch != "x86_64" || got.FirmwareMode != "uefi" {
		t.Fatalf("machine fields: %+v", got)
	}
	latest, err := s.LatestFacts(ctx, m.ID)
	if err != nil || latest.Version != 2 || string(latest.Doc) != `{"a":2}` {
		t.Fatalf("latest: %+v %v", latest, err)
	}
	first, err := s.FactsVersion(ctx, m.ID, 1)
	if err != nil || string(first.Doc) != `{"a":1}` {
		t.Fatalf("version 1: %+v %v", first, err)
	}
	vs, _ := s.FactsVersions(ctx, m.ID)
	if len(vs) != 2 || vs[0].Version != 2 {
		t.Fatalf("versions: %+v", vs)
	}

	// The same serial on a second machine: facts stored, serial not copied, warning given.
	v, w, err = put(m2.ID, `{"b":1}`, FactFields{Serial: "SN1", Vendor: "Dell"})
	if err != nil || v != 1 || len(w) != 1 || !strings.Contains(w[0], "SN1") {
		t.Fatalf("duplicate serial: %d %v %v", v, w, err)
	}
	got2, _ := s.GetMachine(ctx, m2.ID)
	if got2.Serial != "" || got2.Vendor != "Dell" {
		t.Fatalf("machine 2 fields: %+v", got2)
	}
	if _, _, err := put("m-unknown", `{}`, FactFields{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown machine: %v", err)
	}
}

// Who set a serial or system UUID decides whether facts may change it: an operator's value
// (enrollment, an edit) is kept by PutFacts and reported by IdentityConflicts; a value only
// facts ever set may change with the next inspection; clearing it hands it back to facts.
func TestOperatorIdentityIsNotOverwrittenByFacts(t *testing.T) {
	ctx := context.Background()
	s, _ := openTaskTestStore(t)
	var m Machine
	if err := s.Update(ctx, func(tx *Tx) error {
		var err error
		m, err = tx.CreateMachine(ctx, NewMachine{Name: "hmi", MACs: []string{"52:54:00:00:00:09"}, Serial: "HMI-7", State: "enrolled"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !m.SerialByOperator || m.SystemUUIDByOperator {
		t.Fatalf("enrolled with a serial only: by operator serial %v, uuid %v", m.SerialByOperator, m.SystemUUIDByOperator)
	}
	put := func(f FactFields) Machine {
		t.Helper()
		var got Machine
		if err := s.Update(ctx, func(tx *Tx) error {
			if _, _, err := tx.PutFacts(ctx, m.ID, json.RawMessage(`{"a":1}`), f); err != nil {
				return err
			}
			var err error
			got, err = tx.GetMachine(ctx, m.ID)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	f := FactFields{Serial: "FORGED-1", SystemUUID: "u-1"}
	if c := IdentityConflicts(m, f); len(c) != 1 || !strings.Contains(c[0], `inspected serial "FORGED-1" differs from the serial "HMI-7" entered by an operator`) {
		t.Fatalf("conflicts: %q", c)
	}
	got := put(f)
	if got.Serial != "HMI-7" || got.SystemUUID != "u-1" || got.SystemUUIDByOperator {
		t.Fatalf("after facts: serial %q uuid %q (by operator %v)", got.Serial, got.SystemUUID, got.SystemUUIDByOperator)
	}
	if c := IdentityConflicts(got, FactFields{Serial: "hmi-7", SystemUUID: "u-2"}); len(c) != 0 {
		t.Fatalf("same serial in another case, a UUID from facts: conflicts %q", c)
	}
	// The operator clears the serial: facts fill it again and it is not the operator's.
	empty := ""
	if err := s.Update(ctx, func(tx *Tx) error {
		_, err := tx.UpdateMachine(ctx, m.ID, MachinePatch{Serial: &empty})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got = put(FactFields{Serial: "BOARD-9"}); got.Serial != "BOARD-9" || got.SerialByOperator {
		t.Fatalf("cleared serial refilled: %q (by operator %v)", got.Serial, got.SerialByOperator)
	}
	// An operator's edit claims it again.
	uuid := "u-op"
	if err := s.Update(ctx, func(tx *Tx) error {
		var err error
		got, err = tx.UpdateMachine(ctx, m.ID, MachinePatch{SystemUUID: &uuid})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !got.SystemUUIDByOperator || put(FactFields{SystemUUID: "u-3"}).SystemUUID != "u-op" {
		t.Fatalf("an operator's UUID edit is not kept: %+v", got)
	}
}
