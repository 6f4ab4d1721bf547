//go:build cgo

package pam

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"

	"github.com/msteinert/pam/v2"
)

// errConv makes PAM fail a prompt we cannot answer.
var errConv = errors.New("unsupported PAM prompt")

// defaultPAM is libpam, through cgo.
func defaultPAM() pamFunc { return pamAuthenticate }

// pamAuthenticate runs pam_authenticate and pam_acct_mgmt for user in one
// transaction of service. It blocks for pam_unix's failure delay when the
// password is wrong.
func pamAuthenticate(service, user, password, rhost string, log *slog.Logger) (name string, err error) {
	// Modules may keep per-thread state: the whole transaction, End
	// included, runs on one OS thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	conv := pam.ConversationFunc(func(s pam.Style, msg string) (string, error) {
		switch s {
		case pam.PromptEchoOff:
			return password, nil
		case pam.TextInfo, pam.ErrorMsg:
			log.Debug("pam: message", "style", int(s), "msg", msg)
			return "", nil
		case pam.PromptEchoOn, pam.BinaryPrompt:
			log.Debug("pam: unsupported prompt", "style", int(s), "msg", msg)
			return "", errConv
		default:
			return "", errConv
		}
	})
	t, err := pam.Start(service, user, conv)
	if err != nil {
		return "", fmt.Errorf("%w: start service %q: %w", ErrSystem, service, err)
	}
	defer func() {
		if endErr := t.End(); endErr != nil && err == nil {
			err = fmt.Errorf("%w: end transaction: %w", ErrSystem, endErr)
		}
	}()
	if rhost != "" {
		if err := t.SetItem(pam.Rhost, rhost); err != nil {
			return "", fmt.Errorf("%w: set PAM_RHOST: %w", ErrSystem, err)
		}
	}
	// DisallowNullAuthtok: an account without a password never logs in,
	// whatever common-auth's nullok allows for the console.
	if err := t.Authenticate(pam.Silent | pam.DisallowNullAuthtok); err != nil {
		return "", authError(err)
	}
	if err := t.AcctMgmt(pam.Silent | pam.DisallowNullAuthtok); err != nil {
		return "", accountError(err)
	}
	name, err = t.GetItem(pam.User)
	if err != nil {
		return "", fmt.Errorf("%w: get PAM_USER: %w", ErrSystem, err)
	}
	return name, nil
}

// authError classifies pam_authenticate's error. Every way of being wrong
// about the user or the password is ErrBadCredentials, so that the caller
// cannot tell an unknown user from a wrong password.
func authError(err error) error {
	var pe pam.Error
	if !errors.As(err, &pe) {
		return fmt.Errorf("%w: authenticate: %w", ErrSystem, err)
	}
	switch pe {
	case pam.ErrAuth, pam.ErrUserUnknown, pam.ErrCredInsufficient, pam.ErrMaxtries, pam.ErrPermDenied:
		return fmt.Errorf("%w: %w", ErrBadCredentials, pe)
	default:
		return fmt.Errorf("%w: authenticate: %w", ErrSystem, pe)
	}
}

// accountError classifies pam_acct_mgmt's error (the password was right).
func accountError(err error) error {
	var pe pam.Error
	if !errors.As(err, &pe) {
		return fmt.Errorf("%w: account management: %w", ErrSystem, err)
	}
	switch pe {
	case pam.ErrAcctExpired:
		return fmt.Errorf("%w: the account has expired", ErrAccount)
	case pam.ErrNewAuthtokReqd, pam.ErrAuthtokExpired:
		return fmt.Errorf("%w: the password has expired and must be changed", ErrAccount)
	case pam.ErrPermDenied, pam.ErrAuth, pam.ErrUserUnknown:
		// Debian's common-account turns pam_unix's "expired" into
		// pam_deny's PAM_AUTH_ERR.
		return fmt.Errorf("%w: expired, locked, or refused by the account policy (%w)", ErrAccount, pe)
	default:
		return fmt.Errorf("%w: account management: %w", ErrSystem, pe)
	}
}
