package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/joinincard/engine/transit"
)

// CardConcession is a card's concession class over time, by the card's own token.
type CardConcession struct {
	Card    string
	Class   string // now; "" for none
	History []ConcessionChange
}

// ConcessionChange is one recorded change of a card's concession class.
type ConcessionChange struct {
	At    time.Time
	Class string
	By    string
}

// queueConcessions queues the read of the cards' concession classes over time, by their own
// tokens; the map is filled when the batch is sent.
func queueConcessions(q *pgx.Batch, cardTokens []string) map[string]transit.Concessions {
	out := map[string]transit.Concessions{}
	q.Queue(`SELECT card_token, changed_at, class FROM card_concessions WHERE card_token = ANY($1) ORDER BY card_token, changed_at`,
		cardTokens).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var (
				card string
				c    transit.ClassChange
			)
			if err := rows.Scan(&card, &c.At, &c.Class); err != nil {
				return err
			}
			out[card] = append(out[card], c)
		}
		return rows.Err()
	})
	return out
}

// SetCardConcession records that the card any of whose tokens is token carries the concession
// class from now on ("" for none), as person by says. A class the card carries already records
// nothing. An unknown token is an error wrapping ErrNotFound. Travel days already closed keep
// their prices: the class holds from the instant it is recorded.
func (s *Store) SetCardConcession(ctx context.Context, token, class, by string) (CardConcession, error) {
	var cc CardConcession
	err := s.InTx(ctx, nil, func(ctx context.Context, tx *Tx) error {
		cc = CardConcession{}
		err := tx.QueryRow(ctx, `SELECT card_token FROM card_tokens WHERE token = $1`, token).Scan(&cc.Card)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("card: %w", ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("read card token: %w", err)
		}
		if cc.History, err = readConcessions(ctx, tx, cc.Card); err != nil {
			return err
		}
		current := ""
		if n := len(cc.History); n > 0 {
			current = cc.History[n-1].Class
		}
		if current != class {
			c := ConcessionChange{At: s.Now().UTC().Truncate(time.Microsecond), Class: class, By: by}
			if _, err := tx.Exec(ctx, `INSERT INTO card_concessions (card_token, changed_at, class, changed_by) VALUES ($1, $2, $3, $4)`,
				cc.Card, c.At, c.Class, c.By); err != nil {
				return fmt.Errorf("record concession class: %w", err)
			}
			cc.History = append(cc.History, c)
		}
		cc.Class = class
		return nil
	})
	return cc, err
}

func readConcessions(ctx context.Context, tx *Tx, card string) ([]ConcessionChange, error) {
	rows, err := tx.Query(ctx, `SELECT changed_at, class, changed_by FROM card_concessions WHERE card_token = $1 ORDER BY changed_at`, card)
	if err != nil {
		return nil, fmt.Errorf("read concession classes: %w", err)
	}
	defer rows.Close()
	var out []ConcessionChange
	for rows.Next() {
		var c ConcessionChange
		if err := rows.Scan(&c.At, &c.Class, &c.By); err != nil {
			return nil, fmt.Errorf("read concession classes: %w", err)
		}
		c.At = c.At.UTC()
		out = append(out, c)
	}
	return out, rows.Err()
}
