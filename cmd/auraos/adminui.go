package main

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/crypto/bcrypt"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/socketadapter"
)

// adminUIFlags turn on the operators' consoles: the Admin UI namespace
// /admin and the /console pages, with the same credentials.
type adminUIFlags struct {
	on           bool
	username     string
	passwordHash string
	readOnly     bool
}

func (a *adminUIFlags) register(f *pflag.FlagSet) {
	f.BoolVar(&a.on, "admin-ui", false, "serve the Socket.IO Admin UI's namespace /admin and the /console pages to operators (needs --admin-ui-password-hash or JWT verification for admin tokens)")
	f.StringVar(&a.username, "admin-ui-username", "admin", "the operators' username for /admin and /console")
	f.StringVar(&a.passwordHash, "admin-ui-password-hash", "", "bcrypt hash of the operators' password (make one with `auraos hash-password`); empty: admin tokens only")
	f.BoolVar(&a.readOnly, "admin-ui-readonly", false, "refuse the Admin UI's emit, join, leave and disconnect commands")
}

// config returns the adapter's Admin UI settings, nil when --admin-ui is
// off. tokens verifies admin tokens; nil without JWT verification. It
// returns an EINVALID error when nobody could log in or the hash is not a
// bcrypt hash.
func (a adminUIFlags) config(tokens socketadapter.Authenticator) (*socketadapter.AdminConfig, error) {
	if !a.on {
		return nil, nil
	}
	if a.passwordHash == "" && tokens == nil {
		return nil, domain.Errorf(domain.EINVALID, "--admin-ui needs --admin-ui-password-hash (AURAOS_ADMIN_UI_PASSWORD_HASH) or --jwt-secret/--jwks-url for admin tokens")
	}
	creds, err := socketadapter.NewAdminCredentials(a.username, []byte(a.passwordHash), tokens)
	if err != nil {
		return nil, fmt.Errorf("--admin-ui-password-hash: %w", err)
	}
	return &socketadapter.AdminConfig{Credentials: creds, ReadOnly: a.readOnly}, nil
}

// newHashPasswordCommand is `auraos hash-password`: it reads a password
// from stdin and prints its bcrypt hash for --admin-ui-password-hash.
func newHashPasswordCommand() *cobra.Command {
	var cost int
	cmd := &cobra.Command{
		Use:   "hash-password",
		Short: "Read a password from stdin and print its bcrypt hash, for --admin-ui-password-hash",
		Long: `hash-password reads one line from stdin (the password; a trailing newline is not part
of it) and prints its bcrypt hash. Pass the hash to serve as --admin-ui-password-hash or,
better, AURAOS_ADMIN_UI_PASSWORD_HASH:

  printf '%s' "$PASSWORD" | auraos hash-password`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			hash, err := hashPassword(cmd.InOrStdin(), cost)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), hash)
			return err
		},
	}
	cmd.Flags().IntVar(&cost, "cost", bcrypt.DefaultCost, "bcrypt cost (4 to 31)")
	return cmd
}

// hashPassword reads the first line of in and returns its bcrypt hash. It
// returns an EINVALID error for an empty password, one longer than bcrypt's
// 72 bytes, or a cost out of range.
func hashPassword(in io.Reader, cost int) (string, error) {
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("read the password: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	switch {
	case pw == "":
		return "", domain.Errorf(domain.EINVALID, "the password on stdin is empty")
	case len(pw) > 72:
		return "", domain.Errorf(domain.EINVALID, "the password is longer than bcrypt's 72 bytes")
	case cost < bcrypt.MinCost || cost > bcrypt.MaxCost:
		return "", domain.Errorf(domain.EINVALID, "--cost %d: want %d to %d", cost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	if err != nil {
		return "", err
	}
	return string(hash), nil
}
