DROP TABLE system;
