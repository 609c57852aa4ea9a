# A web instance and the DNS names that point at it: the HCL twin of
# dns.yaml. A label holding a dot (the zone's) is read with an index:
# aws_route53_zone["shop.example"].
# Runs against the built-in simulator: kiln run --sim --once examples/dns.hcl
graph = "dns-demo"

resource "aws:ec2" "web" {
  region = "us-east-1"
  image  = "ami-000f627752e462816"
  type   = "t3.micro"
}

resource "aws:route53_zone" "shop.example" {
  comment = "kept by kiln"
}

resource "aws:route53_record" "web" {
  zone   = aws_route53_zone["shop.example"].zone_id
  record = "web.shop.example"
  type   = "A"
  ttl    = 60
  values = [aws_ec2.web.private_ip]
}

resource "aws:route53_record" "spf" {
  zone   = aws_route53_zone["shop.example"].zone_id
  record = "shop.example"
  type   = "TXT"
  values = ["v=spf1 -all"]
}
