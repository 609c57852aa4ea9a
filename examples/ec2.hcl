# Two EC2 instances and a file holding the first one's private address: the
# HCL twin of ec2.yaml. Runs against the built-in simulator:
#   kiln run --sim examples/ec2.hcl
# (the image is the simulator's Amazon Linux 2023 x86_64 AMI; on real AWS use
# an AMI id of your region).
graph = "ec2-demo"

resource "aws:ec2" "web-1" {
  region    = "us-east-1"
  image     = "ami-000f627752e462816"
  type      = "t3.micro"
  user_data = <<-EOT
    #!/bin/sh
    echo hello from web-1
  EOT
  tags      = { team = "demo" }

  meta {
    poll = "60s"
  }
}

resource "aws:ec2" "web-2" {
  region        = "us-east-1"
  state         = "stopped"
  image         = "ami-000f627752e462816"
  type          = "t3.micro"
  allow_restart = true
}

resource "file" "web-1-ip" {
  path    = "ec2-demo/web-1.ip"
  content = "${aws_ec2.web-1.private_ip}\n"
}
