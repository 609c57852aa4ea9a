package cli

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"kiln/internal/awsapi"
	"kiln/internal/secrets"
	"kiln/internal/store"
)

// secretKeyFlags are the master key of the secrets at rest: a key file
// (or KILN_SECRET_KEY), or an AWS KMS key (or KILN_KMS_KEY_ID), and the
// earlier keys of a rotation.
type secretKeyFlags struct {
	keyFile  string
	oldFiles []string
	kmsKeyID string
	oldKMS   []string
}

func (o *secretKeyFlags) register(f *pflag.FlagSet) {
	f.StringVar(&o.keyFile, "secret-key-file", "", "encrypt the secrets kept in the database (webhook secrets) with the key in this file: 32 bytes, hex or base64 (default $KILN_SECRET_KEY, the key itself)")
	f.StringArrayVar(&o.oldFiles, "old-secret-key-file", nil, "an earlier key, to read secrets sealed with it until they are re-sealed with --secret-key-file (repeatable; during a key rotation)")
	f.StringVar(&o.kmsKeyID, "kms-key-id", "", "encrypt the secrets kept in the database with data keys from this AWS KMS key (key id, ARN or alias; default $KILN_KMS_KEY_ID) instead of a key file")
	f.StringArrayVar(&o.oldKMS, "old-kms-key-id", nil, "an earlier AWS KMS key, to read secrets sealed with it until they are re-sealed (repeatable; during a key rotation)")
}

// keyring is the flags' keyring; nil when no key is set. A KMS key is
// looked up (DescribeKey) with the standard AWS configuration.
func (o *secretKeyFlags) keyring(ctx context.Context) (*secrets.Keyring, error) {
	kmsID, file, envKey := o.kmsKeyID, o.keyFile, ""
	switch {
	case kmsID != "" && file != "":
		return nil, errors.New("--kms-key-id and --secret-key-file both name the key: give one (the other as --old-...)")
	case kmsID == "" && file == "":
		kmsID, envKey = os.Getenv("KILN_KMS_KEY_ID"), os.Getenv("KILN_SECRET_KEY")
		if kmsID != "" && envKey != "" {
			return nil, errors.New("KILN_KMS_KEY_ID and KILN_SECRET_KEY are both set: give one master key")
		}
	}
	var api secrets.KMSAPI
	kmsKey := func(id string) (*secrets.KMSKey, error) {
		if api == nil {
			cfg, err := awsapi.LoadConfig(ctx, awsapi.RetryOptions{}, nil)
			if err != nil {
				return nil, fmt.Errorf("aws configuration for kms: %w", err)
			}
			api = kms.NewFromConfig(cfg)
		}
		return secrets.NewKMSKey(ctx, api, id)
	}
	var primary secrets.MasterKey
	switch {
	case kmsID != "":
		k, err := kmsKey(kmsID)
		if err != nil {
			return nil, err
		}
		primary = k
	case file != "":
		raw, err := secrets.ReadKeyFile(file)
		if err != nil {
			return nil, err
		}
		primary = secrets.LocalKey(raw)
	case envKey != "":
		raw, err := secrets.ParseKey(envKey)
		if err != nil {
			return nil, fmt.Errorf("KILN_SECRET_KEY: %w", err)
		}
		primary = secrets.LocalKey(raw)
	default:
		if len(o.oldFiles) > 0 || len(o.oldKMS) > 0 {
			return nil, errors.New("--old-secret-key-file and --old-kms-key-id need a new key: --secret-key-file (or KILN_SECRET_KEY) or --kms-key-id (or KILN_KMS_KEY_ID)")
		}
		return nil, nil
	}
	var old []secrets.MasterKey
	for _, f := range o.oldFiles {
		raw, err := secrets.ReadKeyFile(f)
		if err != nil {
			return nil, err
		}
		old = append(old, secrets.LocalKey(raw))
	}
	for _, id := range o.oldKMS {
		k, err := kmsKey(id)
		if err != nil {
			return nil, err
		}
		old = append(old, k)
	}
	return secrets.NewKeyringOf(primary, old...)
}

// sealSecrets has st seal with k, and re-seals what is in clear text or
// under an older key; it returns how many it re-sealed (-1: no key,
// secrets stay as they are).
func sealSecrets(ctx context.Context, st *store.Store, k *secrets.Keyring) (int, error) {
	if k == nil {
		return -1, nil
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
under the key of --secret-key-file (or KILN_SECRET_KEY), or under the AWS KMS
key of --kms-key-id (or KILN_KMS_KEY_ID), reading them with the keys of
--old-secret-key-file and --old-kms-key-id; secrets still in clear text are
sealed too. A rotation may go from a key file to KMS and back.
Servers started with only the old key can no longer read them: restart them
with the new key (and, while some still run with the old one, with
--old-secret-key-file OLD). kiln serve does the same re-sealing at start-up.`,
		Example: `  openssl rand -hex 32 > new.key
  kiln secrets rotate-key --db kiln.db --secret-key-file new.key --old-secret-key-file old.key
  kiln secrets rotate-key --db kiln.db --kms-key-id alias/kiln --old-secret-key-file new.key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if v := os.Getenv("KILN_DB"); v != "" && !cmd.Flags().Changed("db") {
				db = v
			}
			ctx := cmd.Context()
			k, err := key.keyring(ctx)
			if err != nil {
				return &usageError{cmd: cmd.CommandPath(), err: err}
			}
			if k == nil {
				return &usageError{cmd: cmd.CommandPath(), err: errors.New("--secret-key-file (or KILN_SECRET_KEY) or --kms-key-id (or KILN_KMS_KEY_ID) names the new key")}
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
			fmt.Fprintf(a.stdout, "%d secrets re-sealed under key %s\n", n, k.PrimaryID())
			return nil
		},
	}
	rotate.Flags().StringVar(&db, "db", defaultDB, "the database: a SQLite file or a postgres:// URL (default $KILN_DB when set)")
	key.register(rotate.Flags())
	cmd.AddCommand(rotate)
	return cmd
}
