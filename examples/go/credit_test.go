// Unit tests of the Subscribe flow-control bookkeeping (credit.took).

package main

import "testing"

func TestCreditTopsUpAtHalf(t *testing.T) {
	cr := &credit{size: 4, requested: 4}
	// 1 of 4 used: 3 outstanding, more than half: nothing yet.
	if more := cr.took(1, 3, 13); more != 0 {
		t.Fatalf("after 1: asked for %d more", more)
	}
	// 2 of 4 used: 2 outstanding, half: top back up to 4.
	if more := cr.took(1, 2, 13); more != 2 {
		t.Fatalf("after 2: asked for %d more, want 2", more)
	}
	if cr.requested != 6 || cr.topUps != 1 {
		t.Fatalf("requested %d, top-ups %d", cr.requested, cr.topUps)
	}
	// A batch of 4 leaves 0 outstanding: ask for a full credit.
	if more := cr.took(4, 0, 13); more != 4 {
		t.Fatalf("after 6: asked for %d more, want 4", more)
	}
	if cr.exceeded || cr.pendingOff != "" {
		t.Fatalf("flagged: exceeded %v, %q", cr.exceeded, cr.pendingOff)
	}
}

func TestCreditStopsAtTheWantedTotal(t *testing.T) {
	cr := &credit{size: 4, requested: 4}
	if more := cr.took(4, 0, 4); more != 0 {
		t.Fatalf("asked for %d more after everything arrived", more)
	}
}

func TestCreditFlagsAServerPastTheCredit(t *testing.T) {
	cr := &credit{size: 2, requested: 2}
	cr.took(3, 0, 10)
	if !cr.exceeded {
		t.Fatal("3 events on a credit of 2 not flagged")
	}
	cr = &credit{size: 4, requested: 4}
	cr.took(1, 5, 10)
	if cr.pendingOff == "" {
		t.Fatal("pending_num_requested above the outstanding credit not flagged")
	}
}
