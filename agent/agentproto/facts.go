package agentproto

import "time"

// FactsSchema is the version of the Facts document layout. Readers accept documents with a
// schema they know; a newer agent bumps it when it changes a field's meaning.
const FactsSchema = 1

// Facts is the hardware facts document the agent reports (stored versioned per machine).
type Facts struct {
	Schema      int       `json:"schema"`
	CollectedAt time.Time `json:"collected_at"`
	System      System    `json:"system"`
	BIOS        BIOS      `json:"bios"`
	Firmware    Firmware  `json:"firmware"`
	CPU         CPU       `json:"cpu"`
	Memory      Memory    `json:"memory"`
	Disks       []Disk    `json:"disks"`
	NICs        []NIC     `json:"nics"`
	PCI         []PCIDev  `json:"pci"`
	TPM         TPM       `json:"tpm"`
	// Errors lists what could not be read (a missing sysfs file, a refused ioctl): facts are
	// still useful when a part of them is missing, but the operator should see why.
	Errors []string `json:"errors,omitempty"`
}

// System is the DMI system and board identity.
type System struct {
	UUID         string `json:"uuid,omitempty"`
	Serial       string `json:"serial,omitempty"`
	Vendor       string `json:"vendor,omitempty"`
	Product      string `json:"product,omitempty"`
	Version      string `json:"version,omitempty"`
	SKU          string `json:"sku,omitempty"`
	Family       string `json:"family,omitempty"`
	BoardVendor  string `json:"board_vendor,omitempty"`
	BoardProduct string `json:"board_product,omitempty"`
	BoardSerial  string `json:"board_serial,omitempty"`
	ChassisType  string `json:"chassis_type,omitempty"`
	Arch         string `json:"arch"`
}

// BIOS is the firmware's DMI identity.
type BIOS struct {
	Vendor  string `json:"vendor,omitempty"`
	Version string `json:"version,omitempty"`
	Date    string `json:"date,omitempty"`
}

// Firmware is how the machine booted.
type Firmware struct {
	Mode       string `json:"mode"`        // "uefi" or "bios"
	SecureBoot string `json:"secure_boot"` // "enabled", "disabled", "unknown" (BIOS: "unsupported")
	SetupMode  bool   `json:"setup_mode,omitempty"`
}

// CPU summarizes the processors.
type CPU struct {
	Model   string   `json:"model,omitempty"`
	Vendor  string   `json:"vendor,omitempty"`
	Sockets int      `json:"sockets"`
	Cores   int      `json:"cores"`
	Threads int      `json:"threads"`
	Flags   []string `json:"flags,omitempty"` // only the ones that matter to provisioning
}

// Memory is the installed memory.
type Memory struct {
	// TotalBytes is the physical memory (sum of DIMMs when visible, else online memory blocks).
	TotalBytes  int64  `json:"total_bytes"`
	UsableBytes int64  `json:"usable_bytes"`
	DIMMs       []DIMM `json:"dimms,omitempty"`
}

// DIMM is one populated memory device (SMBIOS type 17).
type DIMM struct {
	Locator      string `json:"locator"`
	BankLocator  string `json:"bank_locator,omitempty"`
	SizeBytes    int64  `json:"size_bytes"`
	Type         string `json:"type,omitempty"`
	SpeedMTs     int    `json:"speed_mts,omitempty"`
	Manufacturer string `json:"manufacturer,omitempty"`
	Serial       string `json:"serial,omitempty"`
	PartNumber   string `json:"part_number,omitempty"`
}

// Disk is one whole block device.
type Disk struct {
	Name               string    `json:"name"` // kernel name: nvme0n1, sda, vda
	Model              string    `json:"model,omitempty"`
	Serial             string    `json:"serial,omitempty"`
	WWN                string    `json:"wwn,omitempty"`
	Firmware           string    `json:"firmware,omitempty"`
	SizeBytes          int64     `json:"size_bytes"`
	LogicalSectorSize  int       `json:"logical_sector_size"`
	PhysicalSectorSize int       `json:"physical_sector_size"`
	Rotational         bool      `json:"rotational"`
	Removable          bool      `json:"removable"`
	ReadOnly           bool      `json:"read_only,omitempty"`
	Transport          string    `json:"transport"` // nvme, sata, sas, scsi, usb, virtio, mmc, unknown
	Driver             string    `json:"driver,omitempty"`
	PCIAddress         string    `json:"pci_address,omitempty"`
	DiscardMaxBytes    int64     `json:"discard_max_bytes,omitempty"`
	NVMe               *NVMeCaps `json:"nvme,omitempty"`
	ATA                *ATACaps  `json:"ata,omitempty"`
}

// NVMeCaps are the Identify Controller words the wipe planner needs.
type NVMeCaps struct {
	Controller string `json:"controller"` // nvme0
	NSID       int    `json:"nsid"`
	OACS       uint16 `json:"oacs"`    // bit 1: Format NVM
	FNA        uint8  `json:"fna"`     // bit 2: crypto erase supported
	SANICAP    uint32 `json:"sanicap"` // bits 0-2: crypto, block, overwrite sanitize
	// Raw is the 4096-byte Identify Controller page, base64, for the wipe engineer's parser.
	Raw []byte `json:"raw,omitempty"`
}

// ATACaps are the IDENTIFY DEVICE words the wipe planner needs.
type ATACaps struct {
	SecuritySupported bool `json:"security_supported"` // word 82 bit 1
	SecurityEnabled   bool `json:"security_enabled"`   // word 128 bit 1
	SecurityFrozen    bool `json:"security_frozen"`    // word 128 bit 3
	EnhancedErase     bool `json:"enhanced_erase"`     // word 128 bit 5
	SanitizeSupported bool `json:"sanitize_supported"` // word 59 bit 12
	CryptoScramble    bool `json:"crypto_scramble"`    // word 59 bit 13
	BlockErase        bool `json:"block_erase"`        // word 59 bit 15
	Overwrite         bool `json:"overwrite"`          // word 59 bit 14
	TRIM              bool `json:"trim"`               // word 169 bit 0
	// Raw is the 512-byte IDENTIFY DEVICE data, base64.
	Raw []byte `json:"raw,omitempty"`
}

// NIC is one physical network interface.
type NIC struct {
	Name       string   `json:"name"`
	MAC        string   `json:"mac"`
	Driver     string   `json:"driver,omitempty"`
	SpeedMbps  int      `json:"speed_mbps,omitempty"`
	Link       bool     `json:"link"`
	PCIAddress string   `json:"pci_address,omitempty"`
	Addresses  []string `json:"addresses,omitempty"`
}

// PCIDev is one PCI function.
type PCIDev struct {
	Address   string `json:"address"`
	VendorID  string `json:"vendor_id"`
	DeviceID  string `json:"device_id"`
	Class     string `json:"class"` // 6 hex digits: class, subclass, prog-if
	SubVendor string `json:"subsystem_vendor_id,omitempty"`
	SubDevice string `json:"subsystem_device_id,omitempty"`
	Driver    string `json:"driver,omitempty"`
}

// TPM says whether a TPM is present and which version.
type TPM struct {
	Present bool   `json:"present"`
	Version string `json:"version,omitempty"` // "2.0" or "1.2"
	Device  string `json:"device,omitempty"`
}
