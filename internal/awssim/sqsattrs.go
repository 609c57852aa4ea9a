package awssim

import (
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"strings"
)

// SQS message attributes: up to 10 a message, each a DataType (String,
// Number or Binary, optionally with a custom ".label") and its value;
// their MD5 is computed as AWS documents it, so that clients that check
// MD5OfMessageAttributes accept it.

// msgAttr is one message attribute as the JSON protocol carries it
// (BinaryValue is base64 in JSON, decoded by encoding/json).
type msgAttr struct {
	DataType         string   `json:"DataType"`
	StringValue      *string  `json:"StringValue,omitempty"`
	BinaryValue      []byte   `json:"BinaryValue,omitempty"`
	StringListValues []string `json:"StringListValues,omitempty"`
	BinaryListValues [][]byte `json:"BinaryListValues,omitempty"`
}

// maxMessageAttrs is SQS's limit of attributes per message.
const maxMessageAttrs = 10

func (a msgAttr) base() string { b, _, _ := strings.Cut(a.DataType, "."); return b }

// checkMessageAttrs validates attributes as SendMessage does and returns
// their size (names, types and values count toward the message size).
func checkMessageAttrs(attrs map[string]msgAttr) (int, error) {
	if len(attrs) > maxMessageAttrs {
		return 0, apiErr("InvalidParameterValue", "Number of message attributes [%d] exceeds the allowed maximum [%d].", len(attrs), maxMessageAttrs)
	}
	size := 0
	for name, a := range attrs {
		if !validAttrName(name) {
			return 0, apiErr("InvalidParameterValue", "Message attribute name '%s' is invalid.", name)
		}
		if len(a.StringListValues) > 0 || len(a.BinaryListValues) > 0 {
			return 0, apiErr("UnsupportedOperation", "Message attribute list values in SendMessage operation are not supported.")
		}
		switch a.base() {
		case "String", "Number":
			if a.StringValue == nil || *a.StringValue == "" {
				return 0, apiErr("InvalidParameterValue", "The message attribute '%s' must contain non-empty message attribute value for message attribute type '%s'.", name, a.DataType)
			}
			if a.base() == "Number" {
				if _, err := strconv.ParseFloat(*a.StringValue, 64); err != nil {
					return 0, apiErr("InvalidParameterValue", "Can't cast the value of message (user) attribute '%s' to a number.", name)
				}
			}
			if !validMessageText(*a.StringValue) {
				return 0, apiErr("InvalidParameterValue", "Message (user) attribute '%s' value contains invalid characters.", name)
			}
			size += len(*a.StringValue)
		case "Binary":
			if len(a.BinaryValue) == 0 {
				return 0, apiErr("InvalidParameterValue", "The message attribute '%s' must contain non-empty message attribute value for message attribute type '%s'.", name, a.DataType)
			}
			size += len(a.BinaryValue)
		default:
			return 0, apiErr("InvalidParameterValue", "The type of message (user) attribute '%s' is invalid. You must use only the following supported type prefixes: Binary, Number, String.", name)
		}
		size += len(name) + len(a.DataType)
	}
	return size, nil
}

// validAttrName: up to 256 of A-Z a-z 0-9 _ - ., no leading, trailing or
// doubled period, not starting with "AWS." or "Amazon.".
func validAttrName(n string) bool {
	if n == "" || len(n) > 256 || n[0] == '.' || n[len(n)-1] == '.' || strings.Contains(n, "..") {
		return false
	}
	l := strings.ToLower(n)
	if strings.HasPrefix(l, "aws.") || strings.HasPrefix(l, "amazon.") {
		return false
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// attrsMD5 is MD5OfMessageAttributes: over the attributes sorted by name,
// each as length-prefixed (4 bytes, big-endian) name and data type, a
// transport byte (1 string, 2 binary) and the length-prefixed value.
func attrsMD5(attrs map[string]msgAttr) string {
	if len(attrs) == 0 {
		return ""
	}
	var buf []byte
	field := func(b []byte) {
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(b)))
		buf = append(buf, b...)
	}
	for _, name := range sortedKeys(attrs) {
		a := attrs[name]
		field([]byte(name))
		field([]byte(a.DataType))
		if a.base() == "Binary" {
			buf = append(buf, 2)
			field(a.BinaryValue)
		} else {
			buf = append(buf, 1)
			field([]byte(*a.StringValue))
		}
	}
	sum := md5.Sum(buf)
	return hex.EncodeToString(sum[:])
}

// selectAttrs is what ReceiveMessage's MessageAttributeNames asks for:
// "All" or ".*" every one, "prefix.*" those starting with prefix., and
// names exactly.
func selectAttrs(attrs map[string]msgAttr, names []string) map[string]msgAttr {
	if len(attrs) == 0 || len(names) == 0 {
		return nil
	}
	out := map[string]msgAttr{}
	for n, a := range attrs {
		for _, want := range names {
			prefix, wild := strings.CutSuffix(want, ".*")
			if want == "All" || want == ".*" || wild && strings.HasPrefix(n, prefix+".") || n == want {
				out[n] = a
				break
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
