package pxe

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// The deploy ISO (scripts/deploy-iso.sh) is generic: its GRUB entry carries slate.media and a
// placeholder of ISOArgsLen bytes starting with ISOArgsMarker. Slate overwrites the placeholder
// while serving the file with "slate.url=<base> <kernel_args>" padded with blanks, so one ISO
// fits any Slate and the image holds no secret: the agent asks for its per-boot token by MAC
// (serveMediaToken), which Slate gives only to a boot it expects.
const (
	DeployISO     = "deploy.iso"
	ISOArgsMarker = "slate.iso.args=SLATE-PATCHES-THIS-"
	ISOArgsLen    = 512
)

// isoIndex remembers where the placeholder sits in one version of the ISO (scanning 40 MiB
// for every BMC range request would be wasteful).
type isoIndex struct {
	size    int64
	mtime   time.Time
	offsets []int64
}

// isoArgs is what replaces the placeholder: the same bytes the iPXE path puts on the kernel
// line besides the token, padded with blanks (the kernel ignores them).
func isoArgs(base, kernelArgs string) ([]byte, error) {
	if !safeScriptValue(base) {
		return nil, fmt.Errorf("the URL machines reach Slate at, %q, has characters a GRUB kernel line cannot carry safely: set public_url", base)
	}
	s := "slate.url=" + base
	if f := strings.Fields(kernelArgs); len(f) > 0 {
		s += " " + strings.Join(f, " ")
	}
	if len(s) > ISOArgsLen {
		return nil, fmt.Errorf("slate.url and kernel_args take %d bytes, more than the ISO's %d-byte placeholder: shorten kernel_args", len(s), ISOArgsLen)
	}
	return append([]byte(s), bytes.Repeat([]byte{' '}, ISOArgsLen-len(s))...), nil
}

// findPlaceholders returns the offsets of every complete placeholder (marker + '_' padding).
func findPlaceholders(r io.ReaderAt, size int64) ([]int64, error) {
	const chunk = 1 << 20
	marker := []byte(ISOArgsMarker)
	buf := make([]byte, chunk+ISOArgsLen)
	var out []int64
	for off := int64(0); off < size; off += chunk {
		n, err := r.ReadAt(buf, off)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		b := buf[:n]
		for i := 0; ; {
			j := bytes.Index(b[i:], marker)
			if j < 0 || i+j >= chunk { // a match starting past chunk is found by the next round
				break
			}
			at := i + j
			if at+ISOArgsLen <= len(b) && isPadding(b[at+len(marker):at+ISOArgsLen]) {
				out = append(out, off+int64(at))
			}
			i = at + 1
		}
	}
	return out, nil
}

func isPadding(b []byte) bool {
	for _, c := range b {
		if c != '_' {
			return false
		}
	}
	return true
}

// patchedFile is the ISO with every placeholder replaced, seekable for http.ServeContent
// (BMCs read ISOs with Range requests).
type patchedFile struct {
	f       *os.File
	size    int64
	pos     int64
	offsets []int64
	patch   []byte
}

func (p *patchedFile) Read(b []byte) (int, error) {
	if p.pos >= p.size {
		return 0, io.EOF
	}
	if rem := p.size - p.pos; int64(len(b)) > rem {
		b = b[:rem]
	}
	n, err := p.f.ReadAt(b, p.pos)
	for _, o := range p.offsets {
		// overlap of [o, o+len(patch)) with [pos, pos+n)
		lo, hi := max(o, p.pos), min(o+int64(len(p.patch)), p.pos+int64(n))
		if lo < hi {
			copy(b[lo-p.pos:hi-p.pos], p.patch[lo-o:hi-o])
		}
	}
	p.pos += int64(n)
	if errors.Is(err, io.EOF) && n > 0 {
		err = nil
	}
	return n, err
}

func (p *patchedFile) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		off += p.pos
	case io.SeekEnd:
		off += p.size
	default:
		return 0, errors.New("seek: bad whence")
	}
	if off < 0 {
		return 0, errors.New("seek: negative position")
	}
	p.pos = off
	return off, nil
}

// serveDeployISO streams the deploy ISO with this Slate's URL patched in. It holds no token,
// so anyone on the segment may fetch it, as they may the kernel and initrd.
func (h *HTTP) serveDeployISO(w http.ResponseWriter, r *http.Request) {
	base, err := h.base(r)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	patch, err := isoArgs(base, h.cfg.KernelArgs)
	if err != nil {
		h.log.Error("deploy ISO cannot carry Slate's URL", "err", err)
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	dir := h.cfg.DeployEnvDir()
	f, err := os.OpenInRoot(dir, DeployISO)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			httpError(w, http.StatusNotFound, fmt.Sprintf("the deploy ISO is missing (%s not found in %s): run make deploy-iso DEPLOYENV_INSTALL=%s on the Slate host", DeployISO, dir, dir))
			return
		}
		h.log.Warn("open deploy ISO", "dir", dir, "err", err)
		httpError(w, http.StatusNotFound, "the deploy ISO cannot be served: see Slate's log")
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		httpError(w, http.StatusNotFound, "the deploy ISO is not a regular file")
		return
	}
	offsets, err := h.isoOffsets(f, st)
	if err != nil {
		h.log.Error("scan deploy ISO", "err", err)
		httpError(w, http.StatusInternalServerError, "Slate could not read the deploy ISO: see its log")
		return
	}
	if len(offsets) == 0 {
		h.log.Error("deploy ISO has no placeholder for Slate's URL", "file", dir+"/"+DeployISO)
		httpError(w, http.StatusInternalServerError, "the deploy ISO was not built by scripts/deploy-iso.sh (no placeholder for Slate's URL): rebuild it with make deploy-iso")
		return
	}
	// The ETag covers the patch: a new public_url or kernel_args is a new file to a cache.
	sum := sha256.New()
	fmt.Fprintf(sum, "%d %d ", st.Size(), st.ModTime().UnixNano())
	sum.Write(patch)
	w.Header().Set("ETag", `"`+hex.EncodeToString(sum.Sum(nil))[:32]+`"`)
	w.Header().Set("Content-Type", "application/x-iso9660-image")
	http.ServeContent(w, r, DeployISO, st.ModTime(), &patchedFile{f: f, size: st.Size(), offsets: offsets, patch: patch})
}

func (h *HTTP) isoOffsets(f *os.File, st os.FileInfo) ([]int64, error) {
	h.isoMu.Lock()
	defer h.isoMu.Unlock()
	if h.iso.size == st.Size() && h.iso.mtime.Equal(st.ModTime()) && h.iso.offsets != nil {
		return h.iso.offsets, nil
	}
	offs, err := findPlaceholders(f, st.Size())
	if err != nil {
		return nil, err
	}
	if offs == nil {
		offs = []int64{}
	}
	h.iso = isoIndex{size: st.Size(), mtime: st.ModTime(), offsets: offs}
	return offs, nil
}

// serveMediaToken gives the agent of a deploy environment booted from the ISO its per-boot
// token, asked by the MAC it took its address on. The rules are the iPXE script's: a known
// machine whose plan is to deploy, a boot Slate expects (one token per expectation) and, where
// Slate leases the addresses, the address it leased to that MAC. A HEAD spends no token.
func (h *HTTP) serveMediaToken(w http.ResponseWriter, r *http.Request, macText string) []any {
	hw, err := net.ParseMAC(macText)
	if err != nil || len(hw) != 6 {
		httpError(w, http.StatusBadRequest, fmt.Sprintf("%s is not a MAC address (want e.g. 52:54:00:12:34:56)", quoteName(macText)))
		return nil
	}
	mac := hw.String()
	attrs := []any{"mac", mac, "media", true}
	ctx := r.Context()
	plan, err := h.planner.BootPlan(ctx, mac)
	switch {
	case errors.Is(err, ErrUnknownMachine):
		httpError(w, http.StatusNotFound, "Slate does not know the machine with MAC "+mac+": enrol it first")
		return attrs
	case err != nil:
		h.log.Error("boot plan failed", "mac", mac, "err", err)
		httpError(w, http.StatusServiceUnavailable, "Slate could not decide what this machine boots; ask again")
		return attrs
	}
	attrs = append(attrs, "machine", plan.MachineID, "state", plan.State, "action", string(plan.Action))
	if plan.Action != ActionDeploy || plan.MachineID == "" {
		httpError(w, http.StatusConflict, fmt.Sprintf("machine %s is %s: Slate has no deploy-environment work for it (its boot plan is %q), so no agent token", plan.MachineID, plan.State, plan.Action))
		return attrs
	}
	if r.Method == http.MethodHead {
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		return attrs
	}
	src, err := sourceAddr(r)
	if err != nil {
		httpError(w, http.StatusBadRequest, "Slate cannot tell which address this request came from")
		return attrs
	}
	tok, err := h.tokens.IssueBootToken(ctx, plan.MachineID, mac, src, h.cfg.AgentTokenTTL)
	switch {
	case errors.Is(err, ErrNoBootExpected):
		h.log.Warn("media boot asked for a token while no boot is expected: none given", "mac", mac, "machine", plan.MachineID, "remote", src.String())
		httpError(w, http.StatusConflict, "Slate does not expect machine "+plan.MachineID+" to boot now, so it gets no agent token: boot it from Slate (slate machine media "+
			plan.MachineID+" insert deploy --boot) or announce the boot (slate machine expect-boot "+plan.MachineID+")")
		return append(attrs, "token", "none: no boot expected")
	case errors.Is(err, ErrSourceNotLeased):
		h.log.Warn("media boot asked for a token from an address Slate did not lease to the MAC: none given", "mac", mac, "machine", plan.MachineID, "remote", src.String())
		httpError(w, http.StatusForbidden, "Slate gives no agent token: this request came from "+src.String()+", not the address Slate leased to "+mac)
		return append(attrs, "token", "none: source not leased")
	case err != nil:
		h.log.Error("issue agent token", "mac", mac, "machine", plan.MachineID, "err", err)
		httpError(w, http.StatusServiceUnavailable, "Slate could not issue this machine's agent token; ask again")
		return attrs
	}
	w.Header().Set("Slate-Machine", plan.MachineID)
	writeScript(w, []byte(tok+"\n"))
	return append(attrs, "token", "issued")
}
