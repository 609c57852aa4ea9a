%{ for region, ips in web ~}
[web-${region}]
%{ for ip in ips ~}
${ip}
%{ endfor ~}
%{ endfor ~}
[api]
%{ for ip in api ~}
${ip}
%{ endfor ~}
