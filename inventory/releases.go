package inventory

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Release is a versioned, approvable system state: an OS image pinned by digest, a BIOS
// profile, a firmware baseline and kernel arguments. Approved releases are immutable.
type Release struct {
	ID               string            `json:"id"`
	Name             string            `json:"name"`
	Version          string            `json:"version"`
	Kind             string            `json:"kind"` // bootc or disk
	ImageRef         string            `json:"image_ref"`
	ImageDigest      string            `json:"image_digest"`
	BIOSProfile      map[string]any    `json:"bios_profile"`
	FirmwareBaseline map[string]any    `json:"firmware_baseline"`
	KernelArgs       string            `json:"kernel_args,omitempty"`
	Notes            string            `json:"notes,omitempty"`
	State            string            `json:"state"` // draft, approved, retired
	CreatedBy        string            `json:"created_by"`
	ApprovedBy       string            `json:"approved_by,omitempty"`
	CreatedAt        time.Time         `json:"created_at"`
	Labels           map[string]string `json:"-"`
	// UsedBy counts the machines (not retired) that are assigned this release or run it: a
	// technician sees what retiring or deleting it touches.
	UsedBy int `json:"used_by"`
}

const releaseCols = `id, name, version, kind, image_ref, image_digest, bios_profile, firmware_baseline, kernel_args, notes, state, created_by, approved_by, created_at`

func scanRelease(sc interface{ Scan(...any) error }) (Release, error) {
	var r Release
	var bios, fw string
	var created int64
	err := sc.Scan(&r.ID, &r.Name, &r.Version, &r.Kind, &r.ImageRef, &r.ImageDigest, &bios, &fw, &r.KernelArgs, &r.Notes,
		&r.State, &r.CreatedBy, &r.ApprovedBy, &created)
	if err != nil {
		return r, err
	}
	r.BIOSProfile, r.FirmwareBaseline = map[string]any{}, map[string]any{}
	_ = json.Unmarshal([]byte(bios), &r.BIOSProfile)
	_ = json.Unmarshal([]byte(fw), &r.FirmwareBaseline)
	r.CreatedAt = time.Unix(0, created).UTC()
	return r, nil
}

// CreateRelease inserts a draft release.
func (t *Tx) CreateRelease(ctx context.Context, r Release) (Release, error) {
	r.ID = newID("r-")
	r.State = "draft"
	if r.BIOSProfile == nil {
		r.BIOSProfile = map[string]any{}
	}
	if r.FirmwareBaseline == nil {
		r.FirmwareBaseline = map[string]any{}
	}
	bios, _ := json.Marshal(r.BIOSProfile)
	fw, _ := json.Marshal(r.FirmwareBaseline)
	_, err := t.tx.ExecContext(ctx, `INSERT INTO releases(`+releaseCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		r.ID, r.Name, r.Version, r.Kind, r.ImageRef, r.ImageDigest, string(bios), string(fw), r.KernelArgs, r.Notes,
		r.State, r.CreatedBy, "", t.now.UnixNano())
	if isUnique(err) {
		return r, Errorf(ErrConflict, "release %s %s already exists: bump the version", r.Name, r.Version)
	}
	if err != nil {
		return r, fmt.Errorf("create release: %w", err)
	}
	return t.GetRelease(ctx, r.ID)
}

// GetRelease reads a release by id, or by "name@version".
func (t *Tx) GetRelease(ctx context.Context, ref string) (Release, error) {
	return getRelease(ctx, t.tx, ref)
}

// GetRelease reads a release by id, or by "name@version".
func (s *Store) GetRelease(ctx context.Context, ref string) (Release, error) {
	return getRelease(ctx, s.read, ref)
}

// GetReleaseWithUse is GetRelease with UsedBy filled (for people: the API and the UI).
func (s *Store) GetReleaseWithUse(ctx context.Context, ref string) (Release, error) {
	r, err := getRelease(ctx, s.read, ref)
	if err != nil {
		return r, err
	}
	r.UsedBy, err = releaseUsedBy(ctx, s.read, r)
	return r, err
}

// getRelease reads a release row. It does not count the machines using it (UsedBy): flows
// inside transactions read releases per machine, and a count per read would make them scan
// every machine each time; GetReleaseWithUse and ListReleases fill it for people.
func getRelease(ctx context.Context, q querier, ref string) (Release, error) {
	return getReleaseRow(ctx, q, ref)
}

// releaseUsedBy counts the machines (not retired) assigned or running one release.
func releaseUsedBy(ctx context.Context, q querier, r Release) (int, error) {
	var n int
	nv := r.Name + "@" + r.Version
	err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM machines WHERE state <> 'retired'
		AND (desired_release IN (?, ?) OR booted_release IN (?, ?))`, r.ID, nv, r.ID, nv).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("which machines use release %s: %w", nv, err)
	}
	return n, nil
}

// releaseUses maps each desired or booted release reference (an id or name@version) to the
// machines carrying it.
type releaseUses map[string]map[string]bool

func (u releaseUses) count(r Release) int {
	seen := map[string]bool{}
	for _, ref := range []string{r.ID, r.Name + "@" + r.Version} {
		for m := range u[ref] {
			seen[m] = true
		}
	}
	return len(seen)
}

// releaseUse reads which machines (not retired: an erased machine runs nothing) name which
// release, desired or booted. One pass over the machines, so a page of releases costs one query.
func releaseUse(ctx context.Context, q querier) (releaseUses, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, desired_release, booted_release FROM machines
		WHERE state <> 'retired' AND (desired_release <> '' OR booted_release <> '')`)
	if err != nil {
		return nil, fmt.Errorf("which machines use which release: %w", err)
	}
	defer rows.Close()
	out := releaseUses{}
	for rows.Next() {
		var id, desired, booted string
		if err := rows.Scan(&id, &desired, &booted); err != nil {
			return nil, err
		}
		for _, ref := range []string{desired, booted} {
			if ref == "" {
				continue
			}
			if out[ref] == nil {
				out[ref] = map[string]bool{}
			}
			out[ref][id] = true
		}
	}
	return out, rows.Err()
}

// DeleteDraftRelease removes a draft release that no machine names; anything else is a
// conflict saying why (an approved or retired release is history: it is retired, never deleted).
func (t *Tx) DeleteDraftRelease(ctx context.Context, ref string) (Release, error) {
	r, err := getRelease(ctx, t.tx, ref)
	if err != nil {
		return r, err
	}
	if r.State != "draft" {
		return r, Errorf(ErrConflict, "release %s@%s is %s: only a draft can be deleted (retire it instead)", r.Name, r.Version, r.State)
	}
	if r.UsedBy, err = releaseUsedBy(ctx, t.tx, r); err != nil {
		return r, err
	}
	if r.UsedBy > 0 {
		return r, Errorf(ErrConflict, "release %s@%s is assigned to %d machine(s): set their desired release to another first", r.Name, r.Version, r.UsedBy)
	}
	res, err := t.tx.ExecContext(ctx, `DELETE FROM releases WHERE id = ? AND state = 'draft'`, r.ID)
	if err != nil {
		return r, fmt.Errorf("delete release %s@%s: %w", r.Name, r.Version, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return r, fmt.Errorf("delete release %s@%s: %d rows deleted (%v)", r.Name, r.Version, n, err)
	}
	return r, nil
}

func getReleaseRow(ctx context.Context, q querier, ref string) (Release, error) {
	name, version := ref, ""
	for i := len(ref) - 1; i >= 0; i-- {
		if ref[i] == '@' {
			name, version = ref[:i], ref[i+1:]
			break
		}
	}
	r, err := scanRelease(q.QueryRowContext(ctx, `SELECT `+releaseCols+` FROM releases WHERE id = ? OR (name = ? AND version = ?)`, ref, name, version))
	if errors.Is(err, sql.ErrNoRows) {
		return r, Errorf(ErrNotFound, "release %q not found (give its id or name@version)", ref)
	}
	return r, err
}

// SetReleaseState moves a release to approved (recording the approver) or retired.
func (t *Tx) SetReleaseState(ctx context.Context, id, state, approvedBy string) error {
	_, err := t.tx.ExecContext(ctx, `UPDATE releases SET state = ?, approved_by = CASE WHEN ? <> '' THEN ? ELSE approved_by END WHERE id = ?`,
		state, approvedBy, approvedBy, id)
	return err
}

// ListReleases returns releases, newest first.
func (s *Store) ListReleases(ctx context.Context, state string) ([]Release, error) {
	q := `SELECT ` + releaseCols + ` FROM releases`
	var args []any
	if state != "" {
		q += ` WHERE state = ?`
		args = append(args, state)
	}
	rows, err := s.read.QueryContext(ctx, q+` ORDER BY created_at DESC`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Release{}
	for rows.Next() {
		r, err := scanRelease(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	used, err := releaseUse(ctx, s.read)
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].UsedBy = used.count(out[i])
	}
	return out, nil
}

// ReleaseDigests returns every image digest a release references (for garbage collection).
func (s *Store) ReleaseDigests(ctx context.Context) (map[string]bool, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT image_digest FROM releases WHERE image_digest <> ''`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return nil, err
		}
		out[d] = true
	}
	return out, rows.Err()
}
