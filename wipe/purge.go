package wipe

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"time"
)

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

// ataSecurityPassword is the temporary user password set for SECURITY ERASE UNIT. It is fixed
// and logged on purpose: if the erase is cut short the drive stays locked, and the technician
// must be able to unlock it (`hdparm --user-master u --security-unlock SlateErase`).
const ataSecurityPassword = "SlateErase"

// purge sends the drive's own sanitize command and waits for it to finish.
func (r *driveRun) purge(m Method) error {
	if m == MethodTCGCryptoErase {
		r.log.Info("tcg command", "device", r.dp.Drive.Path, "command", "Revert AdminSP (SID=MSID or PSID)", "psid_given", r.opts.PSIDs[r.dp.Drive.Serial] != "")
		r.report("purge", 0, 1, true, "TCG Revert")
		if err := r.opts.TCGErase(r.ctx, r.dp.Drive.Path, r.opts.PSIDs[r.dp.Drive.Serial]); err != nil {
			return err
		}
		r.report("purge", 1, 1, true, "")
		return nil
	}
	c, closer, err := r.opts.Open(r.dp.Drive.Path)
	if err != nil {
		return err
	}
	defer closer.Close()
	d := r.dp.Drive
	switch m {
	case MethodNVMeSanitizeCrypto, MethodNVMeSanitizeBlock, MethodNVMeSanitizeOverwrite:
		action := map[Method]NVMeSanitizeAction{MethodNVMeSanitizeCrypto: NVMeSanitizeCryptoErase,
			MethodNVMeSanitizeBlock: NVMeSanitizeBlockErase, MethodNVMeSanitizeOverwrite: NVMeSanitizeOverwrite}[m]
		if _, err := c.NVMeAdmin(r.ctx, NVMeSanitize(action, false, 1, 0), nil); err != nil {
			return fmt.Errorf("nvme sanitize on %s: %w", d.Path, err)
		}
		return r.pollNVMeSanitize(c)
	case MethodNVMeFormatCrypto, MethodNVMeFormatUserData:
		if d.NVMe == nil {
			return fmt.Errorf("nvme format on %s: no identify data", d.Path)
		}
		ses := uint8(1)
		if m == MethodNVMeFormatCrypto {
			ses = 2
		}
		// When the controller says format / secure erase applies to all namespaces (FNA bits
		// 0-1), the command must name them all (NSID FFFFFFFFh) or it is aborted.
		nsid := d.NVMe.NSID
		if d.NVMe.Controller.FNA&0x3 != 0 {
			nsid = nvmeNSIDAll
		}
		r.report("purge", 0, 1, true, "Format NVM")
		if _, err := c.NVMeAdmin(r.ctx, NVMeFormat(nsid, d.NVMe.Namespace.LBAFormat, ses, 3600_000), nil); err != nil {
			return fmt.Errorf("nvme format (ses=%d) on %s: %w", ses, d.Path, err)
		}
		// Format NVM completes synchronously; the Sanitize Status log is consulted too, as
		// some controllers report a failed prior sanitize there that blocks data access.
		buf := make([]byte, nvmeSanitizeLogLen)
		if _, err := c.NVMeAdmin(r.ctx, NVMeSanitizeStatusLog(), buf); err == nil {
			if st, err := ParseNVMeSanitizeStatus(buf); err == nil && st.Status == NVMeSanitizeFailed {
				return fmt.Errorf("nvme %s: sanitize status log reports a failed sanitize; run the exit-failure action and plan again", d.Path)
			}
		}
		r.report("purge", 1, 1, true, "")
		return nil
	case MethodATASanitizeCrypto, MethodATASanitizeBlock, MethodATASanitizeOverwrite:
		kind := map[Method]ATASanitizeKind{MethodATASanitizeCrypto: ATASanitizeCryptoScramble,
			MethodATASanitizeBlock: ATASanitizeBlockErase, MethodATASanitizeOverwrite: ATASanitizeOverwrite}[m]
		if _, err := runATA(r.ctx, c, ATASanitize(kind, 1, 0), DirNone, nil, 10*time.Second); err != nil {
			return fmt.Errorf("ata sanitize on %s: %w", d.Path, err)
		}
		return r.pollATASanitize(c)
	case MethodATASecurityEnhanced, MethodATASecurityErase:
		return r.ataSecurityErase(c, m == MethodATASecurityEnhanced)
	case MethodSCSISanitizeCrypto, MethodSCSISanitizeBlock, MethodSCSISanitizeOverwrite:
		sa := map[Method]SCSISanitizeAction{MethodSCSISanitizeCrypto: SCSISanitizeCryptoErase,
			MethodSCSISanitizeBlock: SCSISanitizeBlockErase, MethodSCSISanitizeOverwrite: SCSISanitizeOverwrite}[m]
		var params []byte
		dir := DirNone
		if sa == SCSISanitizeOverwrite {
			params, _ = SCSISanitizeOverwriteParams(1, false, make([]byte, 4))
			dir = DirOut
		}
		if _, err := runSCSI(r.ctx, c, SCSISanitizeCDB(sa, true, false, uint16(len(params))), dir, params, 20*time.Second); err != nil {
			return fmt.Errorf("scsi sanitize on %s: %w", d.Path, err)
		}
		return r.pollSCSISanitize(c)
	}
	return fmt.Errorf("method %s has no purge executor", m)
}

func (r *driveRun) pollNVMeSanitize(c Commander) error {
	buf := make([]byte, nvmeSanitizeLogLen)
	seenProgress := false
	for polls := 0; ; polls++ {
		if _, err := c.NVMeAdmin(r.ctx, NVMeSanitizeStatusLog(), buf); err != nil {
			return fmt.Errorf("nvme sanitize status log on %s: %w", r.dp.Drive.Path, err)
		}
		st, err := ParseNVMeSanitizeStatus(buf)
		if err != nil {
			return err
		}
		switch st.Status {
		case NVMeSanitizeCompleted, NVMeSanitizeNoDealloc:
			r.report("purge", 65536, 65536, true, "")
			return nil
		case NVMeSanitizeFailed:
			return fmt.Errorf("nvme sanitize on %s failed (sanitize status log): the drive is in a sanitize failure state; retry or exit failure mode", r.dp.Drive.Path)
		case NVMeSanitizeInProgress:
			seenProgress = true
			r.report("purge", uint64(st.Progress), 65536, false, "")
		default:
			if !seenProgress && polls > 5 {
				return fmt.Errorf("nvme sanitize on %s: status log never showed the sanitize (status %d)", r.dp.Drive.Path, st.Status)
			}
		}
		if err := pollEvery(r.ctx, r.opts.PollInterval); err != nil {
			return fmt.Errorf("nvme sanitize on %s interrupted: %w", r.dp.Drive.Path, err)
		}
	}
}

func (r *driveRun) pollATASanitize(c Commander) error {
	for {
		res, err := runATA(r.ctx, c, ATASanitize(ATASanitizeStatusExt, 0, 0), DirNone, nil, 10*time.Second)
		if err != nil {
			return fmt.Errorf("ata sanitize status on %s: %w", r.dp.Drive.Path, err)
		}
		st := ParseATASanitizeStatus(res)
		switch {
		case st.Completed:
			r.report("purge", 65536, 65536, true, "")
			return nil
		case st.Failed:
			return fmt.Errorf("ata sanitize on %s failed (error 0x%02x)", r.dp.Drive.Path, res.Error)
		case st.InProgress:
			r.report("purge", uint64(st.Progress), 65536, false, "")
		default:
			return fmt.Errorf("ata sanitize on %s: status neither in progress nor completed (count 0x%04x)", r.dp.Drive.Path, res.Count)
		}
		if err := pollEvery(r.ctx, r.opts.PollInterval); err != nil {
			return fmt.Errorf("ata sanitize on %s interrupted: %w", r.dp.Drive.Path, err)
		}
	}
}

func (r *driveRun) ataSecurityErase(c Commander, enhanced bool) error {
	d := r.dp.Drive
	pw, _ := ATASecurityPasswordBlock(ataSecurityPassword, false, false)
	r.log.Warn("setting a temporary ATA user password for security erase; if interrupted, unlock with it", "password", ataSecurityPassword)
	if _, err := runATA(r.ctx, c, ATASecuritySetPassword(), DirOut, pw, 15*time.Second); err != nil {
		return fmt.Errorf("ata security set password on %s: %w", d.Path, err)
	}
	if _, err := runATA(r.ctx, c, ATASecurityErasePrepare(), DirNone, nil, 15*time.Second); err != nil {
		return fmt.Errorf("ata security erase prepare on %s: %w", d.Path, err)
	}
	erase, _ := ATASecurityPasswordBlock(ataSecurityPassword, false, enhanced)
	minutes := 0
	if d.ATA != nil {
		minutes = d.ATA.EraseMinutes
		if enhanced {
			minutes = d.ATA.EnhancedEraseMinutes
		}
	}
	timeout := time.Duration(minutes)*time.Minute*2 + 30*time.Minute
	r.report("purge", 0, 1, true, fmt.Sprintf("security erase, drive estimate %d min", minutes))
	if _, err := runATA(r.ctx, c, ATASecurityEraseUnit(), DirOut, erase, timeout); err != nil {
		return fmt.Errorf("ata security erase unit on %s: %w (the drive may be locked with password %q)", d.Path, err, ataSecurityPassword)
	}
	r.report("purge", 1, 1, true, "")
	return nil
}

func (r *driveRun) pollSCSISanitize(c Commander) error {
	for {
		rep, err := r.requestSense(c)
		if err != nil {
			return err
		}
		s, ok := ParseSCSISense(rep)
		if !ok || s.Key == 0 && s.ASC == 0 {
			r.report("purge", 65536, 65536, true, "")
			return nil
		}
		switch {
		case s.Key == 0x2 && s.ASC == 0x04 && s.ASCQ == 0x1B: // sanitize in progress
			if s.Progress >= 0 {
				r.report("purge", uint64(s.Progress), 65536, false, "")
			}
		case s.ASC == 0x31 && s.ASCQ == 0x03: // sanitize command failed
			return fmt.Errorf("scsi sanitize on %s failed (sense 31/03)", r.dp.Drive.Path)
		default:
			return fmt.Errorf("scsi sanitize on %s: unexpected sense key %x asc/ascq %02x/%02x", r.dp.Drive.Path, s.Key, s.ASC, s.ASCQ)
		}
		if err := pollEvery(r.ctx, r.opts.PollInterval); err != nil {
			return fmt.Errorf("scsi sanitize on %s interrupted: %w", r.dp.Drive.Path, err)
		}
	}
}

func (r *driveRun) requestSense(c Commander) ([]byte, error) {
	buf := make([]byte, 252)
	rep, err := c.SCSI(r.ctx, []byte{scsiOpRequestSens, 1, 0, 0, 252, 0}, DirIn, buf, 30*time.Second)
	if err != nil {
		return nil, fmt.Errorf("request sense on %s: %w", r.dp.Drive.Path, err)
	}
	if rep.Status != 0 {
		return nil, errors.New("request sense: check condition")
	}
	n := len(buf) - int(rep.Resid)
	if n < 0 || n > len(buf) {
		n = len(buf)
	}
	return buf[:n], nil
}
