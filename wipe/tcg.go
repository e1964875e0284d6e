package wipe

import (
	"context"
	"fmt"

	"github.com/open-source-firmware/go-tcg-storage/pkg/core"
	"github.com/open-source-firmware/go-tcg-storage/pkg/core/table"
	"github.com/open-source-firmware/go-tcg-storage/pkg/drive"
)

// GoTCGProber runs TCG Level 0 Discovery with go-tcg-storage.
type GoTCGProber struct{}

func (GoTCGProber) Discover(ctx context.Context, path string) (*TCGInfo, error) {
	d, err := drive.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tcg: open %s: %w", path, err)
	}
	defer d.Close()
	d0, err := core.Discovery0(d)
	if err != nil {
		return nil, fmt.Errorf("tcg level 0 discovery on %s: %w", path, err)
	}
	return tcgInfoFromD0(d0), nil
}

func tcgInfoFromD0(d0 *core.Level0Discovery) *TCGInfo {
	t := &TCGInfo{}
	if d0.OpalV2 != nil {
		t.Opal, t.BaseComID = true, d0.OpalV2.BaseComID
	} else if d0.OpalV1 != nil {
		t.Opal = true
	}
	if d0.Enterprise != nil {
		t.Enterprise = true
		if t.BaseComID == 0 {
			t.BaseComID = d0.Enterprise.BaseComID
		}
	}
	t.Pyrite = d0.PyriteV1 != nil || d0.PyriteV2 != nil
	if d0.Locking != nil {
		t.LockingEnabled = d0.Locking.LockingEnabled
		t.Locked = d0.Locking.Locked
		t.MediaEncryption = d0.Locking.MediaEncryption
	}
	return t
}

// TCG Core / Opal SSC UIDs for Revert (Opal SSC 2.01 §5.1.2.1): AdminSP object and the method.
var (
	tcgAdminSPObject = core.InvokingID{0x00, 0x00, 0x02, 0x05, 0x00, 0x00, 0x00, 0x01}
	tcgMethodRevert  = core.MethodID{0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x02, 0x02}
)

// tcgCryptoErase reverts the TPer to factory state, which regenerates every media encryption
// key: a cryptographic erase. It authenticates as SID with the drive's MSID (an unowned drive)
// or, when given, as PSID with the code printed on the label. An owned drive without a PSID
// fails with a message saying so.
func tcgCryptoErase(ctx context.Context, path string, psid string) error {
	d, err := drive.Open(path)
	if err != nil {
		return fmt.Errorf("tcg: open %s: %w", path, err)
	}
	defer d.Close()
	d0, err := core.Discovery0(d)
	if err != nil {
		return fmt.Errorf("tcg discovery on %s: %w", path, err)
	}
	info := tcgInfoFromD0(d0)
	if !info.Opal || info.BaseComID == 0 {
		return fmt.Errorf("tcg crypto erase on %s: only Opal drives are supported (Enterprise needs per-band erase)", path)
	}
	cs, err := core.NewControlSession(d, d0, core.WithComID(core.ComID(info.BaseComID)))
	if err != nil {
		return fmt.Errorf("tcg control session on %s: %w", path, err)
	}
	defer cs.Close()
	as, err := cs.NewSession(core.AdminSP)
	if err != nil {
		return fmt.Errorf("tcg admin session on %s: %w", path, err)
	}
	defer as.Close()
	if psid != "" {
		if err := table.ThisSP_Authenticate(as, core.AuthorityPSID, []byte(psid)); err != nil {
			return fmt.Errorf("tcg PSID authentication on %s failed (check the PSID on the drive label): %w", path, err)
		}
	} else {
		msid, err := table.Admin_C_PIN_MSID_GetPIN(as)
		if err != nil {
			return fmt.Errorf("tcg read MSID on %s: %w", path, err)
		}
		if err := table.ThisSP_Authenticate(as, core.AuthoritySID, msid); err != nil {
			return fmt.Errorf("tcg SID authentication with MSID on %s failed: the drive is owned; give its PSID (label) to revert it: %w", path, err)
		}
	}
	mc := as.NewMethodCall(tcgAdminSPObject, tcgMethodRevert)
	if _, err := as.ExecuteMethod(mc); err != nil {
		return fmt.Errorf("tcg Revert on %s: %w", path, err)
	}
	return nil
}
