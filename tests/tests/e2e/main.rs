mod certs;
mod nginx;
