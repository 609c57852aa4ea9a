package cli

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"kiln/internal/secrets"
	"kiln/internal/store"
)

// secretKeyFlags are the master key of the secrets at rest.
type secretKeyFlags struct {
	keyFile  string
	oldFiles []string
}

func (o *secretKeyFlags) register(f *pflag.FlagSet) {
	f.StringVar(&o.keyFile, "secret-key-file", "", "encrypt the secrets kept in the database (webhook secrets) with the key in this file: 32 bytes, hex or base64 (default $KILN_SECRET_KEY, the key itself)")
	f.StringArrayVar(&o.oldFiles, "old-secret-key-file", nil, "an earlier key, to read secrets sealed with it until they are re-sealed with --secret-key-file (repeatable; during a key rotation)")
}

// keyring is the flags' keyring; nil when no key is set.
func (o *secretKeyFlags) keyring() (*secrets.Keyring, error) {
	var primary []byte
	var err error
	switch {
	case o.keyFile != "":
		primary, err = secrets.ReadKeyFile(o.keyFile)
	case os.Getenv("KILN_SECRET_KEY") != "":
		primary, err = secrets.ParseKey(os.Getenv("KILN_SECRET_KEY"))
		if err != nil {
			err = fmt.Errorf("KILN_SECRET_KEY: %w", err)
		}
	default:
		if len(o.oldFiles) > 0 {
			return nil, errors.New("--old-secret-key-file needs --secret-key-file (or KILN_SECRET_KEY)")
		}
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var old [][]byte
	for _, f := range o.oldFiles {
		k, err := secrets.ReadKeyFile(f)
		if err != nil {
			return nil, err
		}
		old = append(old, k)
	}
	return secrets.NewKeyring(primary, old...)
}

// sealSecrets has st seal with the flags' key, and re-seals what is in
// clear text or under an older key; it returns how many it re-sealed (-1:
// no key, secrets stay as they are).
func (o *secretKeyFlags) sealSecrets(ctx context.Context, st *store.Store) (int, error) {
	k, err := o.keyring()
	if err != nil || k == nil {
		return -1, err
	}
	st.UseSecrets(k)
	return st.ResealSecrets(ctx)
}

func newSecretsCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secrets rotate-key",
		Short: "Manage the key that encrypts the secrets in the bakery's database",
		Args:  cobra.NoArgs,
	}
	var (
		db  string
		key secretKeyFlags
	)
	rotate := &cobra.Command{
		Use:   "rotate-key --db DB --secret-key-file NEW --old-secret-key-file OLD",
		Short: "Re-seal every secret in the database under a new key",
		Long: `Rotate-key re-seals every secret kept in the database (webhook secrets)
under the key of --secret-key-file (or KILN_SECRET_KEY), reading them with the
keys of --old-secret-key-file; secrets still in clear text are sealed too.
Servers started with only the old key can no longer read them: restart them
with the new key (and, while some still run with the old one, with
--old-secret-key-file OLD). kiln serve does the same re-sealing at start-up.`,
		Example: `  openssl rand -hex 32 > new.key
  kiln secrets rotate-key --db kiln.db --secret-key-file new.key --old-secret-key-file old.key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if v := os.Getenv("KILN_DB"); v != "" && !cmd.Flags().Changed("db") {
				db = v
			}
			ctx := cmd.Context()
			k, err := key.keyring()
			if err != nil {
				return &usageError{cmd: cmd.CommandPath(), err: err}
			}
			if k == nil {
				return &usageError{cmd: cmd.CommandPath(), err: errors.New("--secret-key-file (or KILN_SECRET_KEY) names the new key")}
			}
			st, err := store.Open(ctx, db)
			if err != nil {
				return err
			}
			defer st.Close()
			st.UseSecrets(k)
			n, err := st.ResealSecrets(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%d secrets re-sealed under key %s\n", n, key.primaryID())
			return nil
		},
	}
	rotate.Flags().StringVar(&db, "db", defaultDB, "the database: a SQLite file or a postgres:// URL (default $KILN_DB when set)")
	key.register(rotate.Flags())
	cmd.AddCommand(rotate)
	return cmd
}

// primaryID names the primary key for messages ("" when unreadable).
func (o *secretKeyFlags) primaryID() string {
	var raw []byte
	if o.keyFile != "" {
		raw, _ = secrets.ReadKeyFile(o.keyFile)
	} else {
		raw, _ = secrets.ParseKey(os.Getenv("KILN_SECRET_KEY"))
	}
	if raw == nil {
		return ""
	}
	return secrets.KeyID(raw)
}
