package experiments

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/zalando/go-keyring"
)

// KeyringService is the OS keyring service under which mem1lab keeps API keys;
// each key is stored under the entry name a profile gives (api_key_keyring).
const KeyringService = "mem1lab"

// ResolveKey finds an API key: the environment variable env names when it is
// set and not empty, else the OS keyring entry (KeyringService, entry), else "".
// The key is only ever held in memory; errors never include it.
func ResolveKey(env, entry string) (string, error) {
	if env != "" {
		if k := os.Getenv(env); k != "" {
			return k, nil
		}
	}
	if entry == "" {
		return "", nil
	}
	k, err := keyring.Get(KeyringService, entry)
	if err != nil {
		if errors.Is(err, keyring.ErrNotFound) {
			return "", fmt.Errorf("no API key in the OS keyring under %q (save it from the Endpoints screen)", entry)
		}
		return "", fmt.Errorf("OS keyring entry %q: %w", entry, err)
	}
	return k, nil
}

// SaveKeyringKey stores key in the OS keyring under entry (never in the store).
func SaveKeyringKey(entry, key string) error {
	if strings.TrimSpace(entry) == "" {
		return errors.New("keyring entry: empty name")
	}
	if key == "" {
		return errors.New("keyring entry: empty key")
	}
	if err := keyring.Set(KeyringService, entry, key); err != nil {
		return fmt.Errorf("OS keyring entry %q: %w", entry, err)
	}
	return nil
}
