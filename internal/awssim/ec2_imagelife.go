package awssim

import (
	"time"
)

// An image's later life, as EC2 has it: a deprecation time
// (EnableImageDeprecation / DisableImageDeprecation) after which the
// image is deprecated, still launchable, but left out of other accounts'
// listings unless IncludeDeprecated is set; and disabling (DisableImage /
// EnableImage), which makes the image private and unlaunchable, its state
// "disabled", and leaves it out of every listing unless IncludeDisabled
// is set. Both are undone by their opposite call; only the owner may make
// any of them. Describing an image by id finds it deprecated or disabled.

// imageDisabled is the state of a disabled image.
const imageDisabled = "disabled"

// maxDeprecation is how far ahead a deprecation time may be (EC2's
// upper limit for private images).
const maxDeprecation = 10 * 365 * 24 * time.Hour

// deprecated reports whether im is past its deprecation time at now.
func (im *image) deprecated(now time.Time) bool {
	return !im.deprecateAt.IsZero() && !now.Before(im.deprecateAt)
}

// listed reports whether a listing (DescribeImages without image ids)
// shows im to the account: a disabled image only with includeDisabled, a
// deprecated one of another owner only with includeDeprecated.
func (s *Sim) listed(im *image, now time.Time, includeDeprecated, includeDisabled bool) bool {
	if im.state == imageDisabled && !includeDisabled {
		return false
	}
	if im.deprecated(now) && im.owner != s.opts.Account && !includeDeprecated {
		return false
	}
	return true
}

func (s *Sim) enableImageDeprecation(r *request) (any, error) {
	v, err := r.required("DeprecateAt")
	if err != nil {
		return nil, err
	}
	at, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return nil, apiErr("InvalidParameterValue", "Invalid value '%s' for DeprecateAt: expecting YYYY-MM-DDTHH:MM:SSZ", v)
	}
	at = at.UTC().Round(time.Minute) // EC2 rounds the seconds to the nearest minute
	now := s.lock()
	defer s.mu.Unlock()
	im, err := s.ownImageLocked(r) // ec2_imageattrs.go
	if err != nil {
		return nil, err
	}
	switch {
	case at.Before(now.Truncate(time.Minute)):
		return nil, apiErr("InvalidParameterValue", "The deprecation time %s is in the past.", isoTime(at))
	case at.After(now.Add(maxDeprecation)):
		return nil, apiErr("InvalidParameterValue", "The deprecation time %s is more than 10 years from now.", isoTime(at))
	}
	im.deprecateAt = at
	return &returnResponse{Return: true}, nil
}

func (s *Sim) disableImageDeprecation(r *request) (any, error) {
	s.lock()
	defer s.mu.Unlock()
	im, err := s.ownImageLocked(r)
	if err != nil {
		return nil, err
	}
	im.deprecateAt = time.Time{}
	return &returnResponse{Return: true}, nil
}

// disableImage: only an available image may be disabled; it is made
// private (its launch permissions are dropped) and cannot be launched.
func (s *Sim) disableImage(r *request) (any, error) {
	now := s.lock()
	defer s.mu.Unlock()
	im, err := s.ownImageLocked(r)
	if err != nil {
		return nil, err
	}
	if im.state != imageAvailable {
		return nil, apiErr("IncorrectState", "The image %s is %s; only an available image can be disabled.", im.id, im.state)
	}
	im.state = imageDisabled
	im.public = false
	delete(s.regions.launchPerms, im.id)
	s.publishImageLocked(im) // accounts.go
	s.imageEventLocked(im, now)
	return &returnResponse{Return: true}, nil
}

func (s *Sim) enableImage(r *request) (any, error) {
	now := s.lock()
	defer s.mu.Unlock()
	im, err := s.ownImageLocked(r)
	if err != nil {
		return nil, err
	}
	if im.state != imageDisabled {
		return nil, apiErr("IncorrectState", "The image %s is %s; only a disabled image can be enabled.", im.id, im.state)
	}
	im.state = imageAvailable
	s.imageEventLocked(im, now)
	return &returnResponse{Return: true}, nil
}
