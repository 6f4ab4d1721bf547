DROP TABLE databases;
DROP TABLE domain_hostnames;
DROP TABLE domains;
DROP TABLE tenants;
