// compose's one-shot mongo-users service (mongosh, as the root account, which nothing else uses):
// one database user per quern service, each with readWrite on quern's database alone.
// Run again at every `up`: it creates the users that are missing and resets the others' passwords.
const database = process.env.MONGO_DATABASE;
const target = db.getSiblingDB(database);
const roles = [{ role: "readWrite", db: database }];
for (const service of ["gateway", "runner", "results"]) {
  const user = `quern-${service}`;
  const pwd = process.env[`MONGO_${service.toUpperCase()}_PASSWORD`];
  if (!pwd) throw new Error(`MONGO_${service.toUpperCase()}_PASSWORD is not set`);
  if (target.getUser(user) === null) target.createUser({ user, pwd, roles });
  else target.updateUser(user, { pwd, roles });
}
print(`users quern-gateway, quern-runner, quern-results can read and write ${database}`);
