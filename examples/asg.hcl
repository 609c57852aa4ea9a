# An image baked from Amazon Linux, run by an Auto Scaling group: the HCL
# twin of asg.yaml. Runs against the built-in simulator:
#   kiln run --sim --once examples/asg.hcl
graph = "asg-demo"

resource "aws:ami" "web" {
  region = "us-east-1"
  base {
    owner       = "amazon"
    name        = "al2023-ami-2023.*-x86_64"
    most_recent = true
  }
  type   = "t3.small"
  script = <<-EOT
    #!/bin/sh
    dnf install -y nginx
  EOT
}

resource "aws:asg" "web" {
  region    = "us-east-1"
  image     = aws_ami.web.image_id
  type      = "t3.micro"
  user_data = <<-EOT
    #!/bin/sh
    systemctl start nginx
  EOT
  min       = 2
  max       = 6
  desired   = 4
  rollout {
    min_healthy_percent = 50
    warmup              = "60s"
    auto_rollback       = true
  }
  meta {
    poll = "60s"
  }
}
