package awssim

import "testing"

// Known digests of MD5OfMessageAttributes, as SQS computes them.
func TestAttrsMD5(t *testing.T) {
	str := func(s string) *string { return &s }
	one := map[string]msgAttr{"attribName1": {DataType: "String", StringValue: str("attribValue 1")}}
	num := map[string]msgAttr{"customNumberTypeAttrib": {DataType: "Number.float", StringValue: str("4563442423554324324264524243.32543234")}}
	bin := map[string]msgAttr{"binaryAttribute": {DataType: "Binary", BinaryValue: []byte("Hello binary world!")}}
	all := map[string]msgAttr{}
	for _, m := range []map[string]msgAttr{one, num, bin} {
		for k, v := range m {
			all[k] = v
		}
	}
	for _, tc := range []struct {
		attrs map[string]msgAttr
		want  string
	}{
		{one, "19e27d4e946b072f3f58da80d94fd778"},
		{num, "9fe1b90bbd9965bdf77bac517c7d2495"},
		{bin, "31a92b15d92f8db860eda32aceb656c3"},
		{all, "c932db14a896c663f83c260297d594ff"},
	} {
		if got := attrsMD5(tc.attrs); got != tc.want {
			t.Errorf("attrsMD5(%v) = %s, want %s", tc.attrs, got, tc.want)
		}
	}
}
