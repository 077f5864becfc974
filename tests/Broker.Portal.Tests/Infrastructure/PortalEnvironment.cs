using System.Net;
using System.Net.Http.Json;
using Broker.Core.Callers;
using Broker.Portal.Accounts;
using Broker.Portal.Totp;
using Broker.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace Broker.Portal.Tests.Infrastructure;

/// <summary>
/// A real redis-server, the portal and the validation API on real Kestrel (127.0.0.1, port 0),
/// sharing one store, one pepper and one fake clock. The portal database is SQLite in the data
/// directory, or a fresh database in a <see cref="PostgresCluster"/> when one is given.
/// Disposing stops and deletes everything.
/// </summary>
public sealed class PortalEnvironment : IAsyncDisposable
{
    public const string Password = "correct horse battery staple";

    private PortalEnvironment(RedisServer redis, FakeTimeProvider time, string dataDirectory, CapturingLoggerProvider logs)
    {
        Redis = redis;
        Time = time;
        DataDirectory = dataDirectory;
        Logs = logs;
    }

    public RedisServer Redis { get; }

    public FakeTimeProvider Time { get; }

    public string DataDirectory { get; }

    public CapturingLoggerProvider Logs { get; }

    public RunningApp Portal { get; private set; } = null!;

    public RunningApp Validation { get; private set; } = null!;

    /// <summary>The PostgreSQL connection string, or null on SQLite.</summary>
    public string? PostgresConnectionString { get; private set; }

    /// <param name="extra">Configuration on top of the test defaults.</param>
    /// <param name="postgres">A cluster to take a fresh database from; SQLite when null.</param>
    /// <param name="services">Registrations made before the portal's own, which therefore win over its TryAdd defaults.</param>
    public static async Task<PortalEnvironment> StartAsync(IDictionary<string, string?>? extra = null, PostgresCluster? postgres = null, Action<IServiceCollection>? services = null)
    {
        var redis = await RedisServer.StartAsync();
        var dir = Path.Combine(Path.GetTempPath(), "broker-portal-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(dir);
        var env = new PortalEnvironment(redis, new FakeTimeProvider(DateTimeOffset.UtcNow), dir, new CapturingLoggerProvider());
        var config = BrokerApps.BaseConfig(redis.Configuration);
        config["Broker:DataDirectory"] = dir;
        config["Broker:Portal:PublicOrigin"] = "http://localhost";
        config["Broker:Portal:Mail:ImapHost"] = "imap.example.org";
        config["Broker:Portal:Mail:SmtpHost"] = "smtp.example.org";
        config["Broker:Portal:Mail:Domain"] = "example.org";
        config["Logging:LogLevel:Default"] = "Information";
        if (postgres is not null)
        {
            env.PostgresConnectionString = await postgres.CreateDatabaseAsync();
            config["Broker:Portal:DatabaseProvider"] = "Postgres";
            config["Broker:Portal:ConnectionString"] = env.PostgresConnectionString;
        }

        foreach (var (k, v) in extra ?? new Dictionary<string, string?>())
        {
            config[k] = v;
        }

        env.Portal = await BrokerApps.StartAsync(config, s =>
        {
            s.AddSingleton<TimeProvider>(env.Time);
            services?.Invoke(s);
            s.AddBrokerPortal();
        }, app => app.MapBrokerPortal(), env.Logs);
        env.Validation = await BrokerApps.StartValidationAsync(config, s => s.AddSingleton<TimeProvider>(env.Time), env.Logs);
        return env;
    }

    public PortalClient NewClient() => new(Portal.Address);

    /// <summary>The admin path of the CLI: a new account and its one-time enrollment link (path and query).</summary>
    public async Task<string> CreateUserAsync(string username, bool admin = false)
    {
        var (_, link, _) = await PortalCommands.CreateUserAsync(Portal.Services, username, admin, CancellationToken.None);
        return new Uri(link).PathAndQuery;
    }

    /// <summary>The next TOTP code: moves the clock one step on, as a person waiting for a new code would.</summary>
    public string NextCode(string key)
    {
        Time.Advance(TimeSpan.FromSeconds(30));
        return TotpService.Compute(key, Time.GetUtcNow());
    }

    /// <summary>Enrolls from the link: password, then an authenticator app. Returns the signed-in user.</summary>
    public async Task<EnrolledUser> EnrollWithTotpAsync(string username, bool admin = false, string totpName = "Phone app")
    {
        var link = await CreateUserAsync(username, admin);
        var client = NewClient();
        var enroll = await client.GetAsync(link);
        var token = new Uri(new Uri("http://x"), link).Query.Split("token=")[1];
        var afterPassword = await client.PostAsync(enroll.Url, null, [new("Token", token), new("Password", Password), new("Confirm", Password)], enroll.AntiforgeryToken());
        Assert.Equal("/Security", afterPassword.Url);

        var totpPage = await client.GetAsync("/Security/Totp");
        var key = totpPage.TextOf("totp-key").Replace(" ", string.Empty, StringComparison.Ordinal);
        var done = await client.PostAsync("/Security/Totp", null, [new("Code", NextCode(key)), new("Name", totpName), new("Pending", totpPage.HiddenValue("Pending")!)], totpPage.AntiforgeryToken());
        var codes = done.RecoveryCodes();
        Assert.Equal(10, codes.Count);
        return new EnrolledUser(username, key, codes, client);
    }

    /// <summary>Signs in a new browser with password and TOTP.</summary>
    public async Task<PortalClient> SignInWithTotpAsync(EnrolledUser user)
    {
        var client = NewClient();
        var second = await client.SubmitAsync("/Account/Login", "Password", [new("Username", user.Username), new("Password", Password)]);
        Assert.Equal("/Account/SecondFactor", second.Url.Split('?')[0]);
        var done = await client.PostAsync(second.Url, "Totp", [new("Code", NextCode(user.TotpKey))], second.AntiforgeryToken());
        Assert.Equal("/AppPasswords", done.Url);
        return client;
    }

    /// <summary>Creates an app password through the portal and returns the secret read from the page.</summary>
    public static async Task<(string Secret, PageResponse Page)> CreateAppPasswordAsync(PortalClient client, string name = "Thunderbird", params string[] scopes)
    {
        var form = await client.GetAsync("/AppPasswords/New");
        Assert.Equal("/AppPasswords/New", form.Url);
        var fields = new List<KeyValuePair<string, string>> { new("Name", name), new("Lifetime", "30.00:00:00") };
        fields.AddRange((scopes.Length == 0 ? ["imap", "submission"] : scopes).Select(s => new KeyValuePair<string, string>("Scopes", s)));
        var created = await client.PostAsync("/AppPasswords/New", null, fields, form.AntiforgeryToken());
        return (created.TextOf("app-password"), created);
    }

    /// <summary>Asks the validation API, as a mail server would.</summary>
    public async Task<HttpStatusCode> ValidateAsync(string username, string password, string service = "imap")
    {
        using var http = Validation.CreateClient();
        using var response = await http.PostAsJsonAsync("/v1/validate", new { username, password, service, remoteIp = "192.0.2.10" });
        return response.StatusCode;
    }

    /// <summary>Waits until at least <paramref name="count"/> captured log lines match, e.g. work done after a response.</summary>
    public async Task WaitForLogAsync(Func<string, bool> match, int count = 1, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(20));
        while (Logs.Lines.Count(match) < count)
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"Expected {count} matching log lines; found {Logs.Lines.Count(match)}.");
            }

            await Task.Delay(50);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await Validation.DisposeAsync();
        await Portal.DisposeAsync();
        await Redis.DisposeAsync();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        if (PostgresConnectionString is not null)
        {
            await using var connection = new Npgsql.NpgsqlConnection(PostgresConnectionString);
            Npgsql.NpgsqlConnection.ClearPool(connection);
        }

        try
        {
            Directory.Delete(DataDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

public sealed record EnrolledUser(string Username, string TotpKey, IReadOnlyList<string> RecoveryCodes, PortalClient Client);
