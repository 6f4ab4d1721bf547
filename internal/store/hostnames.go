package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// syncHostnames makes domainID serve exactly hosts (normalised, index 0 the
// server name). The primary key of domain_hostnames is the arbiter: of two
// transactions claiming one hostname, the second waits for the first and,
// when it commits, finds the hostname taken and reports ErrDuplicate naming
// the domain that has it. Hostnames are claimed in sorted order so that two
// domains claiming overlapping sets cannot deadlock.
func syncHostnames(ctx context.Context, tx pgx.Tx, domainID int64, hosts []string) error {
	if _, err := tx.Exec(ctx, `DELETE FROM domain_hostnames WHERE domain_id = $1 AND hostname <> ALL($2::text[])`,
		domainID, hosts); err != nil {
		return err
	}
	// A hostname the winner of a race gave up again right after (rare) is
	// claimed once more; three rounds cover any realistic interleaving.
	pending := hosts
	for range 3 {
		if len(pending) == 0 {
			return nil
		}
		rows, err := tx.Query(ctx, `INSERT INTO domain_hostnames (hostname, domain_id)
			SELECT h, $2 FROM unnest($1::text[]) AS h ORDER BY h
			ON CONFLICT (hostname) DO NOTHING RETURNING hostname`, pending, domainID)
		if err != nil {
			return err
		}
		claimed, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		if pending, err = unclaimed(ctx, tx, domainID, hosts, without(pending, claimed)); err != nil {
			return err
		}
	}
	if len(pending) > 0 {
		return &FieldError{Field: hostnameField(indexOf(hosts, pending[0])), Value: pending[0], Err: ErrConflict,
			Msg: fmt.Sprintf("hostname %q is being claimed and released concurrently; retry", pending[0])}
	}
	return nil
}

// unclaimed looks at the hostnames that were not inserted: one another
// domain has is an ErrDuplicate (the first in manifest order is reported),
// one this domain has already is fine, one nobody has is returned to retry.
func unclaimed(ctx context.Context, tx pgx.Tx, domainID int64, hosts, missing []string) ([]string, error) {
	if len(missing) == 0 {
		return nil, nil
	}
	rows, err := tx.Query(ctx, `SELECT h.hostname, h.domain_id, d.name FROM domain_hostnames h
		JOIN domains d ON d.id = h.domain_id WHERE h.hostname = ANY($1::text[])`, missing)
	if err != nil {
		return nil, err
	}
	type owner struct {
		id   int64
		name string
	}
	owners := map[string]owner{}
	var (
		host string
		o    owner
	)
	if _, err := pgx.ForEachRow(rows, []any{&host, &o.id, &o.name}, func() error {
		owners[host] = o
		return nil
	}); err != nil {
		return nil, err
	}
	var retry []string
	for i, h := range hosts {
		o, ok := owners[h]
		switch {
		case ok && o.id != domainID:
			return nil, &FieldError{Field: hostnameField(i), Value: h, Err: ErrDuplicate,
				Msg: fmt.Sprintf("hostname %q is already served by Domain %q", h, o.name)}
		case !ok && indexOf(missing, h) >= 0:
			retry = append(retry, h)
		}
	}
	return retry, nil
}

func without(all, remove []string) []string {
	var out []string
	for _, s := range all {
		if indexOf(remove, s) < 0 {
			out = append(out, s)
		}
	}
	return out
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}
