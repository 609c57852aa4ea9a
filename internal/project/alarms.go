package project

import (
	"fmt"
	"slices"
)

// Rollback rules of an environment's alarm gate (rollback:).
const (
	// RollbackAuto: Auto Scaling rolls a refresh back itself when an alarm
	// fires (AutoRollback), and kiln rolls back after it.
	RollbackAuto = "auto"
	// RollbackKiln: the refresh only fails (no AutoRollback), and kiln
	// moves the instances back with a refresh of its own.
	RollbackKiln = "kiln"
)

// alarmGate applies an environment's alarms: and rollback: to its group's
// rollout: the instance refresh is started with the alarms as its
// AlarmSpecification and rollback: auto as AutoRollback, and the
// promotion watches them (bakery). They are the same settings as
// group.rollout.alarms and group.rollout.auto_rollback, so an environment
// gives one or the other.
func (pp *projectParser) alarmGate(e *Environment, prefix string, alarms []string, rollback string, at func(string) int, local map[string]int) {
	_, hasAlarms := local[prefix+".alarms"]
	_, hasRollback := local[prefix+".rollback"]
	if hasAlarms {
		switch {
		case len(e.Group.Rollout.Alarms) > 0:
			pp.errorf(at("alarms"), prefix+".alarms", "give alarms here or in group.rollout.alarms, not both")
		case len(alarms) == 0:
			pp.errorf(at("alarms"), prefix+".alarms", "want a list of CloudWatch alarm names")
		case len(alarms) > maxAlarms:
			pp.errorf(at("alarms"), prefix+".alarms", "at most %d alarms, got %d", maxAlarms, len(alarms))
		}
		for i, a := range alarms {
			switch {
			case a == "" || len(a) > 255:
				pp.errorf(at("alarms"), fmt.Sprintf("%s.alarms[%d]", prefix, i), "alarm names are 1 to 255 characters")
			case slices.Contains(alarms[:i], a):
				pp.errorf(at("alarms"), fmt.Sprintf("%s.alarms[%d]", prefix, i), "%q given twice", a)
			}
		}
		if len(e.Group.Rollout.Alarms) == 0 {
			e.Group.Rollout.Alarms = alarms
		}
	}
	if hasRollback {
		switch {
		case e.Group.Rollout.AutoRollback != nil:
			pp.errorf(at("rollback"), prefix+".rollback", "give rollback here or group.rollout.auto_rollback, not both")
		case rollback == RollbackAuto || rollback == RollbackKiln:
			auto := rollback == RollbackAuto
			e.Group.Rollout.AutoRollback = &auto
		default:
			pp.errorf(at("rollback"), prefix+".rollback", "want auto (Auto Scaling rolls back) or kiln (kiln does), not %q", rollback)
		}
	}
}
