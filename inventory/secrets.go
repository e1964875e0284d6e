package inventory

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
)

// SecretBox encrypts secrets at rest (BMC passwords) with AES-256-GCM.
type SecretBox struct{ aead cipher.AEAD }

// LoadOrCreateKey reads the 32-byte key at path, creating it with mode 0600 on first start.
func LoadOrCreateKey(path string) (*SecretBox, error) {
	key, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key = make([]byte, 32)
		if _, err := io.ReadFull(rand.Reader, key); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("create secret key %s: %w", path, err)
		}
		if _, err := f.Write(key); err != nil {
			f.Close()
			return nil, err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, err
		}
		if err := f.Close(); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("read secret key %s: %w", path, err)
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("secret key %s has %d bytes, want 32: restore it from backup (BMC passwords cannot be decrypted without it)", path, len(key))
	}
	return NewSecretBox(key)
}

// NewSecretBox builds a box from a 32-byte key.
func NewSecretBox(key []byte) (*SecretBox, error) {
	blk, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(blk)
	if err != nil {
		return nil, err
	}
	return &SecretBox{aead: aead}, nil
}

// Seal encrypts plaintext; aad binds the ciphertext to its row (a password moved to another
// machine's row fails to decrypt).
func (b *SecretBox) Seal(plaintext, aad []byte) []byte {
	nonce := make([]byte, b.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return b.aead.Seal(nonce, nonce, plaintext, aad)
}

// Open decrypts what Seal produced.
func (b *SecretBox) Open(ct, aad []byte) ([]byte, error) {
	n := b.aead.NonceSize()
	if len(ct) < n {
		return nil, errors.New("ciphertext too short")
	}
	return b.aead.Open(nil, ct[:n], ct[n:], aad)
}

// BMCCredentials is a BMC with its decrypted password, for redfish/ only.
type BMCCredentials struct {
	BMCInfo
	MachineID string
	Password  string
}

// SetBMC stores (or replaces) a machine's BMC, encrypting the password. An empty SystemID
// keeps the stored one: a new address or password (a re-pin) does not make a blade another
// system of its chassis.
func (t *Tx) SetBMC(ctx context.Context, box *SecretBox, machineID string, info BMCInfo, password string) error {
	if info.Address == "" {
		return Errorf(ErrInvalid, "BMC address is empty")
	}
	if info.VendorProfile == "" {
		info.VendorProfile = "generic"
	}
	enc := box.Seal([]byte(password), []byte(machineID))
	_, err := t.tx.ExecContext(ctx, `INSERT INTO bmcs(machine_id, address, vendor_profile, username, password_enc, tls_fingerprint, system_id, updated_at)
		VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(machine_id) DO UPDATE SET address=excluded.address, vendor_profile=excluded.vendor_profile,
		username=excluded.username, password_enc=excluded.password_enc, tls_fingerprint=excluded.tls_fingerprint,
		system_id=CASE WHEN excluded.system_id <> '' THEN excluded.system_id ELSE bmcs.system_id END, updated_at=excluded.updated_at`,
		machineID, info.Address, info.VendorProfile, info.Username, enc, info.TLSFingerprint, info.SystemID, t.now.Unix())
	if err != nil {
		return fmt.Errorf("set BMC of machine %s: %w", machineID, err)
	}
	return nil
}

// SetBMCFingerprint pins the TLS certificate fingerprint seen on first use.
func (t *Tx) SetBMCFingerprint(ctx context.Context, machineID, fp string) error {
	_, err := t.tx.ExecContext(ctx, `UPDATE bmcs SET tls_fingerprint=?, updated_at=? WHERE machine_id=?`, fp, t.now.Unix(), machineID)
	return err
}

// BMCCredentials returns a machine's BMC with its password decrypted.
func (s *Store) BMCCredentials(ctx context.Context, box *SecretBox, machineID string) (BMCCredentials, error) {
	var c BMCCredentials
	var enc []byte
	err := s.read.QueryRowContext(ctx, `SELECT machine_id, address, vendor_profile, username, password_enc, tls_fingerprint, system_id FROM bmcs WHERE machine_id = ?`,
		machineID).Scan(&c.MachineID, &c.Address, &c.VendorProfile, &c.Username, &enc, &c.TLSFingerprint, &c.SystemID)
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("BMC of machine %s: %w", machineID, ErrNotFound)
	}
	if err != nil {
		return c, err
	}
	pw, err := box.Open(enc, []byte(machineID))
	if err != nil {
		return c, fmt.Errorf("decrypt BMC password of machine %s: %w (was the secret key replaced?)", machineID, err)
	}
	c.Password = string(pw)
	return c, nil
}
