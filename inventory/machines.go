package inventory

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"time"
)

// Machine is one physical server Slate knows about.
type Machine struct {
	ID             string            `json:"id"`
	Name           string            `json:"name"`
	MACs           []string          `json:"macs"`
	SystemUUID     string            `json:"system_uuid,omitempty"`
	Serial         string            `json:"serial,omitempty"`
	Vendor         string            `json:"vendor,omitempty"`
	Model          string            `json:"model,omitempty"`
	Arch           string            `json:"arch,omitempty"`
	FirmwareMode   string            `json:"firmware_mode,omitempty"`
	Site           string            `json:"site,omitempty"`
	Segment        string            `json:"segment,omitempty"`
	Labels         map[string]string `json:"labels"`
	State          string            `json:"state"`
	FailedReason   string            `json:"failed_reason,omitempty"`
	FailedTask     string            `json:"failed_task,omitempty"`
	FailedFrom     string            `json:"failed_from,omitempty"`
	DesiredRelease string            `json:"desired_release,omitempty"`
	BootedRelease  string            `json:"booted_release,omitempty"`
	// BootedDigest is the image digest the node's installer record names (disk images).
	BootedDigest string `json:"booted_digest,omitempty"`
	// SerialByOperator and SystemUUIDByOperator say the value was entered by a person (or
	// the BMC), not learnt from inspection: the agent may not change it, and inspected facts
	// that disagree fail the machine for a technician to resolve.
	SerialByOperator     bool      `json:"serial_by_operator,omitempty"`
	SystemUUIDByOperator bool      `json:"system_uuid_by_operator,omitempty"`
	CreatedAt            time.Time `json:"created_at"`
	UpdatedAt            time.Time `json:"updated_at"`
	BMC                  *BMCInfo  `json:"bmc,omitempty"`
}

// BMCInfo is what may be shown of a BMC: never its password.
type BMCInfo struct {
	Address        string `json:"address"`
	VendorProfile  string `json:"vendor_profile"`
	Username       string `json:"username"`
	TLSFingerprint string `json:"tls_fingerprint,omitempty"`
	// SystemID is the computer system behind the BMC that is this machine (a blade of a
	// chassis); "" when the service has one system.
	SystemID string `json:"system_id,omitempty"`
}

// NormalizeMAC returns the canonical lower-case colon form of a MAC-48 address.
func NormalizeMAC(s string) (string, error) {
	hw, err := net.ParseMAC(strings.TrimSpace(s))
	if err != nil || len(hw) != 6 {
		return "", Errorf(ErrInvalid, "%q is not a MAC address (want six bytes, e.g. 52:54:00:12:34:56)", s)
	}
	return hw.String(), nil
}

func newID(prefix string) string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux; a failure means the host is broken
	}
	return prefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

const machineCols = `id, name, system_uuid, serial, vendor, model, arch, firmware_mode, site, segment, labels,
	state, failed_reason, failed_task, failed_from, desired_release, booted_release, booted_digest, created_at, updated_at,
	serial_by_operator, system_uuid_by_operator`

func scanMachine(sc interface{ Scan(...any) error }) (Machine, error) {
	var m Machine
	var labels string
	var created, updated int64
	err := sc.Scan(&m.ID, &m.Name, &m.SystemUUID, &m.Serial, &m.Vendor, &m.Model, &m.Arch, &m.FirmwareMode,
		&m.Site, &m.Segment, &labels, &m.State, &m.FailedReason, &m.FailedTask, &m.FailedFrom,
		&m.DesiredRelease, &m.BootedRelease, &m.BootedDigest, &created, &updated, &m.SerialByOperator, &m.SystemUUIDByOperator)
	if err != nil {
		return m, err
	}
	m.Labels = map[string]string{}
	_ = json.Unmarshal([]byte(labels), &m.Labels)
	m.CreatedAt = time.Unix(0, created).UTC()
	m.UpdatedAt = time.Unix(0, updated).UTC()
	return m, nil
}

func loadMACs(ctx context.Context, q querier, ms []Machine) error {
	if len(ms) == 0 {
		return nil
	}
	idx := map[string]int{}
	args := make([]any, len(ms))
	for i := range ms {
		idx[ms[i].ID] = i
		args[i] = ms[i].ID
		ms[i].MACs = []string{}
	}
	rows, err := q.QueryContext(ctx, `SELECT machine_id, mac FROM machine_macs WHERE machine_id IN (`+
		strings.TrimSuffix(strings.Repeat("?,", len(ms)), ",")+`) ORDER BY machine_id, position`, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id, mac string
		if err := rows.Scan(&id, &mac); err != nil {
			return err
		}
		ms[idx[id]].MACs = append(ms[idx[id]].MACs, mac)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	brows, err := q.QueryContext(ctx, `SELECT machine_id, address, vendor_profile, username, tls_fingerprint, system_id FROM bmcs WHERE machine_id IN (`+
		strings.TrimSuffix(strings.Repeat("?,", len(ms)), ",")+`)`, args...)
	if err != nil {
		return err
	}
	defer brows.Close()
	for brows.Next() {
		var id string
		var b BMCInfo
		if err := brows.Scan(&id, &b.Address, &b.VendorProfile, &b.Username, &b.TLSFingerprint, &b.SystemID); err != nil {
			return err
		}
		ms[idx[id]].BMC = &b
	}
	return brows.Err()
}

// MachineFilter narrows a machine listing.
type MachineFilter struct {
	State  string
	Label  string // "key=value" or "key"
	Query  string // free text over name, serial, MAC, vendor, model, UUID
	Limit  int
	Offset int
	// Sort is one of MachineSortKeys ("" = name); Desc reverses it. Ties are broken by name.
	Sort string
	Desc bool
	// IncludeRetired lists retired machines too; by default they are hidden (a plant floor
	// has hundreds of them). Asking for State "retired" lists them regardless.
	IncludeRetired bool
}

// retiredState is lifecycle.Retired (inventory cannot import lifecycle).
const retiredState = "retired"

// machineSortSQL maps a sort key to its SQL expression. Each has an index ending in name
// (migration 0012), so a page is an index walk, not a sort of the whole table.
func machineSortSQL(key string) (string, bool) {
	switch key {
	case "name":
		return "name", true
	case "state":
		return "state", true
	case "release":
		return "desired_release", true
	case "ip":
		return "json_extract(labels, '$.ip')", true
	case "updated":
		return "updated_at", true
	}
	return "", false
}

// MachineSortKeys are the keys ListMachines sorts by, for error messages and forms.
func MachineSortKeys() []string { return []string{"name", "state", "release", "ip", "updated"} }

// MaxMachinePage is the largest page ListMachines returns.
const MaxMachinePage = 1000

// ListMachines returns machines matching f in its order, and the total count before paging.
// Filter, sort, limit and offset all run in SQL: 10,000 machines stay fast
// (BenchmarkMachineList10k).
func (s *Store) ListMachines(ctx context.Context, f MachineFilter) ([]Machine, int, error) {
	var where []string
	var args []any
	sortKey := f.Sort
	if sortKey == "" {
		sortKey = "name"
	}
	orderExpr, ok := machineSortSQL(sortKey)
	if !ok {
		return nil, 0, Errorf(ErrInvalid, "sort %q is not a machine sort key (%s)", f.Sort, strings.Join(MachineSortKeys(), ", "))
	}
	if f.State != "" {
		where = append(where, "state = ?")
		args = append(args, f.State)
	} else if !f.IncludeRetired {
		where = append(where, "state <> ?")
		args = append(args, retiredState)
	}
	if f.Label != "" {
		k, v, hasV := strings.Cut(f.Label, "=")
		if hasV {
			where = append(where, "json_extract(labels, '$.' || json_quote(?)) = ?")
			args = append(args, k, v)
		} else {
			where = append(where, "json_type(labels, '$.' || json_quote(?)) IS NOT NULL")
			args = append(args, k)
		}
	}
	if q := strings.TrimSpace(f.Query); q != "" {
		like := "%" + strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(strings.ToLower(q)) + "%"
		where = append(where, `(lower(name) LIKE ? ESCAPE '\' OR lower(serial) LIKE ? ESCAPE '\' OR lower(vendor) LIKE ? ESCAPE '\'
			OR lower(model) LIKE ? ESCAPE '\' OR lower(system_uuid) LIKE ? ESCAPE '\' OR lower(id) LIKE ? ESCAPE '\'
			OR id IN (SELECT machine_id FROM machine_macs WHERE mac LIKE ? ESCAPE '\'))`)
		for range 7 {
			args = append(args, like)
		}
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	var total int
	if err := s.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM machines`+cond, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count machines: %w", err)
	}
	limit := f.Limit
	if limit <= 0 || limit > MaxMachinePage {
		limit = 100
	}
	dir := " ASC"
	if f.Desc {
		dir = " DESC"
	}
	order := orderExpr + dir
	if sortKey != "name" {
		order += ", name" + dir
	}
	rows, err := s.read.QueryContext(ctx, `SELECT `+machineCols+` FROM machines`+cond+` ORDER BY `+order+` LIMIT ? OFFSET ?`,
		append(args, limit, max(f.Offset, 0))...)
	if err != nil {
		return nil, 0, fmt.Errorf("list machines: %w", err)
	}
	defer rows.Close()
	out := []Machine{}
	for rows.Next() {
		m, err := scanMachine(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	return out, total, loadMACs(ctx, s.read, out)
}

// CountByState returns how many machines are in each state.
func (s *Store) CountByState(ctx context.Context) (map[string]int, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT state, COUNT(*) FROM machines GROUP BY state`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		out[st] = n
	}
	return out, rows.Err()
}

// GetMachine returns one machine by id or name.
func (s *Store) GetMachine(ctx context.Context, idOrName string) (Machine, error) {
	return getMachine(ctx, s.read, idOrName)
}

func getMachine(ctx context.Context, q querier, idOrName string) (Machine, error) {
	m, err := scanMachine(q.QueryRowContext(ctx, `SELECT `+machineCols+` FROM machines WHERE id = ? OR name = ?`, idOrName, idOrName))
	if errors.Is(err, sql.ErrNoRows) {
		return m, fmt.Errorf("machine %q: %w", idOrName, ErrNotFound)
	}
	if err != nil {
		return m, fmt.Errorf("get machine %q: %w", idOrName, err)
	}
	ms := []Machine{m}
	if err := loadMACs(ctx, q, ms); err != nil {
		return m, err
	}
	return ms[0], nil
}

// MachineByMAC finds the machine that owns mac.
func (s *Store) MachineByMAC(ctx context.Context, mac string) (Machine, error) {
	var id string
	err := s.read.QueryRowContext(ctx, `SELECT machine_id FROM machine_macs WHERE mac = ?`, strings.ToLower(mac)).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return Machine{}, fmt.Errorf("machine with MAC %s: %w", mac, ErrNotFound)
	}
	if err != nil {
		return Machine{}, err
	}
	return s.GetMachine(ctx, id)
}

// GetMachine reads a machine inside the transaction.
func (t *Tx) GetMachine(ctx context.Context, idOrName string) (Machine, error) {
	return getMachine(ctx, t.tx, idOrName)
}

// NewMachine is what enrollment or discovery knows about a machine.
type NewMachine struct {
	Name         string
	MACs         []string
	SystemUUID   string
	Serial       string
	Vendor       string
	Model        string
	Arch         string
	FirmwareMode string
	Site         string
	Segment      string
	Labels       map[string]string
	State        string
}

// CreateMachine inserts a machine. A duplicate MAC, serial or name is ErrConflict naming it.
func (t *Tx) CreateMachine(ctx context.Context, n NewMachine) (Machine, error) {
	if n.State == "" {
		return Machine{}, Errorf(ErrInvalid, "a new machine needs a state")
	}
	macs := make([]string, 0, len(n.MACs))
	for _, raw := range n.MACs {
		mac, err := NormalizeMAC(raw)
		if err != nil {
			return Machine{}, err
		}
		macs = append(macs, mac)
	}
	id := newID("m-")
	if n.Name == "" {
		n.Name = id
	}
	if n.Labels == nil {
		n.Labels = map[string]string{}
	}
	labels, _ := json.Marshal(n.Labels)
	now := t.now.UnixNano()
	_, err := t.tx.ExecContext(ctx, `INSERT INTO machines(`+machineCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,'','','','','','',?,?,?,?)`,
		id, n.Name, n.SystemUUID, n.Serial, n.Vendor, n.Model, n.Arch, n.FirmwareMode, n.Site, n.Segment, string(labels),
		n.State, now, now, strings.TrimSpace(n.Serial) != "", strings.TrimSpace(n.SystemUUID) != "")
	if isUnique(err) {
		if strings.Contains(err.Error(), "serial") {
			return Machine{}, Errorf(ErrConflict, "serial %q already belongs to another machine", n.Serial)
		}
		return Machine{}, Errorf(ErrConflict, "name %q is already taken", n.Name)
	}
	if err != nil {
		return Machine{}, fmt.Errorf("create machine: %w", err)
	}
	if err := t.setMACs(ctx, id, macs); err != nil {
		return Machine{}, err
	}
	return t.GetMachine(ctx, id)
}

func (t *Tx) setMACs(ctx context.Context, id string, macs []string) error {
	if _, err := t.tx.ExecContext(ctx, `DELETE FROM machine_macs WHERE machine_id = ?`, id); err != nil {
		return err
	}
	for i, mac := range macs {
		_, err := t.tx.ExecContext(ctx, `INSERT INTO machine_macs(mac, machine_id, position) VALUES (?,?,?)`, mac, id, i)
		if isUnique(err) {
			return Errorf(ErrConflict, "MAC %s already belongs to another machine (or is listed twice)", mac)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// MachinePatch changes some fields of a machine; nil fields stay as they are.
type MachinePatch struct {
	Name           *string            `json:"name,omitempty"`
	MACs           *[]string          `json:"macs,omitempty"`
	SystemUUID     *string            `json:"system_uuid,omitempty"`
	Serial         *string            `json:"serial,omitempty"`
	Vendor         *string            `json:"vendor,omitempty"`
	Model          *string            `json:"model,omitempty"`
	Arch           *string            `json:"arch,omitempty"`
	FirmwareMode   *string            `json:"firmware_mode,omitempty"`
	Site           *string            `json:"site,omitempty"`
	Segment        *string            `json:"segment,omitempty"`
	Labels         *map[string]string `json:"labels,omitempty"`
	DesiredRelease *string            `json:"desired_release,omitempty"`
	BootedRelease  *string            `json:"booted_release,omitempty"`
	BootedDigest   *string            `json:"booted_digest,omitempty"`
	// fromFacts marks a patch made from inspected facts (PutFacts): it neither claims the
	// identity as operator-entered nor may it change an operator-entered one.
	fromFacts bool
}

// UpdateMachine applies p to a machine.
func (t *Tx) UpdateMachine(ctx context.Context, id string, p MachinePatch) (Machine, error) {
	m, err := t.GetMachine(ctx, id)
	if err != nil {
		return m, err
	}
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = strings.TrimSpace(*v)
		}
	}
	set(&m.Name, p.Name)
	set(&m.SystemUUID, p.SystemUUID)
	set(&m.Serial, p.Serial)
	if !p.fromFacts {
		// Whoever else sets the identity (an operator's edit, BMC enrollment) owns it;
		// clearing it hands it back to inspection.
		if p.Serial != nil {
			m.SerialByOperator = m.Serial != ""
		}
		if p.SystemUUID != nil {
			m.SystemUUIDByOperator = m.SystemUUID != ""
		}
	}
	set(&m.Vendor, p.Vendor)
	set(&m.Model, p.Model)
	set(&m.Arch, p.Arch)
	set(&m.FirmwareMode, p.FirmwareMode)
	set(&m.Site, p.Site)
	set(&m.Segment, p.Segment)
	set(&m.DesiredRelease, p.DesiredRelease)
	set(&m.BootedRelease, p.BootedRelease)
	set(&m.BootedDigest, p.BootedDigest)
	if m.Name == "" {
		return m, Errorf(ErrInvalid, "name cannot be empty")
	}
	if p.Labels != nil {
		m.Labels = *p.Labels
		if m.Labels == nil {
			m.Labels = map[string]string{}
		}
	}
	labels, _ := json.Marshal(m.Labels)
	_, err = t.tx.ExecContext(ctx, `UPDATE machines SET name=?, system_uuid=?, serial=?, vendor=?, model=?, arch=?, firmware_mode=?,
		site=?, segment=?, labels=?, desired_release=?, booted_release=?, booted_digest=?, updated_at=?,
		serial_by_operator=?, system_uuid_by_operator=? WHERE id=?`,
		m.Name, m.SystemUUID, m.Serial, m.Vendor, m.Model, m.Arch, m.FirmwareMode, m.Site, m.Segment, string(labels),
		m.DesiredRelease, m.BootedRelease, m.BootedDigest, t.now.UnixNano(), m.SerialByOperator, m.SystemUUIDByOperator, m.ID)
	if isUnique(err) {
		if strings.Contains(err.Error(), "serial") {
			return m, Errorf(ErrConflict, "serial %q already belongs to another machine", m.Serial)
		}
		return m, Errorf(ErrConflict, "name %q is already taken", m.Name)
	}
	if err != nil {
		return m, fmt.Errorf("update machine %s: %w", m.ID, err)
	}
	if p.MACs != nil {
		macs := make([]string, 0, len(*p.MACs))
		for _, raw := range *p.MACs {
			mac, err := NormalizeMAC(raw)
			if err != nil {
				return m, err
			}
			macs = append(macs, mac)
		}
		if err := t.setMACs(ctx, m.ID, macs); err != nil {
			return m, err
		}
	}
	return t.GetMachine(ctx, m.ID)
}

// SetMachineState records a state change. lifecycle/ decides whether it is allowed.
func (t *Tx) SetMachineState(ctx context.Context, id, state, failedReason, failedTask, failedFrom string) error {
	res, err := t.tx.ExecContext(ctx, `UPDATE machines SET state=?, failed_reason=?, failed_task=?, failed_from=?, updated_at=? WHERE id=?`,
		state, failedReason, failedTask, failedFrom, t.now.UnixNano(), id)
	if err != nil {
		return fmt.Errorf("set state of machine %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("machine %q: %w", id, ErrNotFound)
	}
	return nil
}

// SortedLabels renders labels as k=v pairs in a stable order.
func SortedLabels(l map[string]string) []string {
	out := make([]string, 0, len(l))
	for k, v := range l {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// MachineByMAC finds the machine that owns mac, inside the transaction.
func (t *Tx) MachineByMAC(ctx context.Context, mac string) (Machine, error) {
	var id string
	err := t.tx.QueryRowContext(ctx, `SELECT machine_id FROM machine_macs WHERE mac = ?`, strings.ToLower(mac)).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return Machine{}, fmt.Errorf("machine with MAC %s: %w", mac, ErrNotFound)
	}
	if err != nil {
		return Machine{}, err
	}
	return t.GetMachine(ctx, id)
}

// FindMachine returns the machine that owns any of macs, else the one with this system UUID,
// else the one with this serial (nil: none), and what matched ("MAC 52:…", `serial "X"`).
// Enrollment by BMC matches what the BMC reports with what DHCP or a technician recorded.
func (t *Tx) FindMachine(ctx context.Context, macs []string, uuid, serial string) (*Machine, string, error) {
	for _, mac := range macs {
		m, err := t.MachineByMAC(ctx, mac)
		if err == nil {
			return &m, "MAC " + mac, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return nil, "", err
		}
	}
	for _, q := range []struct{ col, v string }{{"system_uuid", strings.ToLower(uuid)}, {"serial", serial}} {
		if q.v == "" {
			continue
		}
		var id string
		err := t.tx.QueryRowContext(ctx, `SELECT id FROM machines WHERE lower(`+q.col+`) = lower(?) LIMIT 1`, q.v).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		m, err := t.GetMachine(ctx, id)
		if err != nil {
			return nil, "", err
		}
		what := fmt.Sprintf("serial %q", q.v)
		if q.col == "system_uuid" {
			what = "system UUID " + q.v
		}
		return &m, what, nil
	}
	return nil, "", nil
}

// SavedFilter is a machine-list filter a user saved under a name; Query is the list's URL
// query (q, state, label, sort, dir, size, retired).
type SavedFilter struct {
	Name      string    `json:"name"`
	Query     string    `json:"query"`
	CreatedAt time.Time `json:"created_at"`
}

// SaveFilter stores (or replaces) a user's named filter.
func (s *Store) SaveFilter(ctx context.Context, username, name, query string) error {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 80 {
		return Errorf(ErrInvalid, "a saved filter needs a name of 1 to 80 characters")
	}
	if len(query) > 2000 {
		return Errorf(ErrInvalid, "the filter is too long to save (over 2000 characters)")
	}
	return s.Update(ctx, func(tx *Tx) error {
		_, err := tx.tx.ExecContext(ctx, `INSERT INTO saved_filters(username, name, query, created_at) VALUES (?,?,?,?)
			ON CONFLICT(username, name) DO UPDATE SET query = excluded.query`, username, name, query, tx.now.UnixNano())
		if err != nil {
			return fmt.Errorf("save filter %q of %s: %w", name, username, err)
		}
		return nil
	})
}

// ListFilters returns a user's saved filters by name.
func (s *Store) ListFilters(ctx context.Context, username string) ([]SavedFilter, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT name, query, created_at FROM saved_filters WHERE username = ? ORDER BY name`, username)
	if err != nil {
		return nil, fmt.Errorf("list saved filters of %s: %w", username, err)
	}
	defer rows.Close()
	out := []SavedFilter{}
	for rows.Next() {
		var f SavedFilter
		var at int64
		if err := rows.Scan(&f.Name, &f.Query, &at); err != nil {
			return nil, err
		}
		f.CreatedAt = time.Unix(0, at).UTC()
		out = append(out, f)
	}
	return out, rows.Err()
}

// DeleteFilter removes a user's saved filter (ErrNotFound when there is none by that name).
func (s *Store) DeleteFilter(ctx context.Context, username, name string) error {
	return s.Update(ctx, func(tx *Tx) error {
		res, err := tx.tx.ExecContext(ctx, `DELETE FROM saved_filters WHERE username = ? AND name = ?`, username, name)
		if err != nil {
			return fmt.Errorf("delete filter %q of %s: %w", name, username, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("saved filter %q: %w", name, ErrNotFound)
		}
		return nil
	})
}
