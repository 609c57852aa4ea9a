# A key pair, two security groups and an image run by an instance and an
# Auto Scaling group that use them: the HCL twin of network.yaml.
# Runs against the built-in simulator: kiln run --sim --once examples/network.hcl
graph = "network-demo"

locals {
  region = "us-east-1"
}

resource "aws:key_pair" "deploy" {
  region     = local.region
  public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGtpbG4gZGVtbyBrZXk6IG5vdCBhIHJlYWwgb25lISEh ops@laptop"
}

resource "aws:security_group" "lb" {
  region      = local.region
  description = "load balancers"
  ingress {
    protocol = "tcp"
    ports    = 443
    cidrs    = ["0.0.0.0/0", "::/0"]
  }
}

resource "aws:security_group" "web" {
  region      = local.region
  description = "web servers"
  ingress {
    protocol    = "tcp"
    ports       = 8080
    groups      = [aws_security_group.lb.group_id]
    description = "from the load balancers"
  }
  ingress {
    protocol    = "tcp"
    ports       = 22
    cidrs       = ["10.0.0.0/8"]
    description = "ssh from the office"
  }
  egress {
    protocol = "tcp"
    ports    = 443
    cidrs    = ["0.0.0.0/0"]
  }
}

resource "aws:ami" "web" {
  region = local.region
  base {
    owner       = "amazon"
    name        = "al2023-ami-2023.*"
    most_recent = true
  }
  type   = "t3.small"
  script = <<-EOT
    #!/bin/sh
    dnf install -y nginx
  EOT
}

resource "aws:ec2" "bastion" {
  region          = local.region
  image           = aws_ami.web.image_id
  type            = "t3.micro"
  key_name        = aws_key_pair.deploy.key_name
  security_groups = [aws_security_group.web.group_id]
}

resource "aws:asg" "web" {
  region            = local.region
  image             = aws_ami.web.image_id
  type              = "t3.micro"
  security_groups   = [aws_security_group.web.group_id]
  min               = 2
  max               = 4
  wait_for_capacity = "10m"
}
