using System.Globalization;
using System.Security.Cryptography;
using Broker.Core.AppPasswords;
using Broker.Testing;

namespace Broker.MailServers.Tests.Infrastructure;

/// <summary>
/// Debian 13's Dovecot 2.4 (chroot into a <see cref="DovecotRoot"/>) configured from
/// infra/dovecot-2.4/ and the shared infra/dovecot/broker.lua, in front of its own Broker: the Lua
/// passdb (+ doveadm for kicks), the oauth2 alternative, the auth policy, and both passdbs pointed
/// at a Broker that is down or hangs.
/// </summary>
public sealed class Dovecot24Lab : IAsyncLifetime, IDisposable
{
    public const int PolicyThreshold = 3;

    private readonly string _doveadmKey = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));

    private readonly List<DovecotServer> _servers = [];

    private System.Net.Sockets.TcpListener? _blackHole;

    private RunningApp? _tlsGateway;

    private string? _certDir;

    public DovecotRoot Root { get; private set; } = null!;

    public BrokerUnderTest Broker { get; private set; } = null!;

    /// <summary>infra/dovecot-2.4/conf.d/90-broker.conf + broker.lua + 92-broker-doveadm.conf.</summary>
    public DovecotServer Lua { get; private set; } = null!;

    /// <summary>infra/dovecot-2.4/conf.d/90-broker-oauth2.conf + dovecot-oauth2-broker.conf.ext.</summary>
    public DovecotServer OAuth2 { get; private set; } = null!;

    /// <summary>Lua passdb plus infra/dovecot-2.4/conf.d/91-broker-policy.conf.</summary>
    public DovecotServer Policy { get; private set; } = null!;

    public DovecotServer LuaBrokerDown { get; private set; } = null!;

    public DovecotServer LuaBrokerHung { get; private set; } = null!;

    public DovecotServer OAuth2BrokerDown { get; private set; } = null!;

    public DovecotServer OAuth2BrokerHung { get; private set; } = null!;

    /// <summary>The Lua passdb calling Broker over HTTPS, trusting Broker's CA (ssl_client_ca_file).</summary>
    public DovecotServer LuaTls { get; private set; } = null!;

    /// <summary>The Lua passdb calling Broker over HTTPS but trusting another CA.</summary>
    public DovecotServer LuaWrongCa { get; private set; } = null!;

    /// <summary>The oauth2 passdb calling Broker over HTTPS, the CA in its oauth2 { } block.</summary>
    public DovecotServer OAuth2Tls { get; private set; } = null!;

    public AppPasswordService AppPasswords => Broker.Validation.AppPasswords;

    public async Task InitializeAsync()
    {
        // Fails (never skips) with the command that builds the root when it is missing.
        Root = DovecotRoot.Trixie();

        var doveadmPort = FreePort.Get();
        Broker = await BrokerUnderTest.StartAsync(new Dictionary<string, string?>
        {
            ["Broker:Dovecot:Doveadm:Url"] = $"http://127.0.0.1:{doveadmPort.ToString(CultureInfo.InvariantCulture)}",
            ["Broker:Dovecot:Doveadm:ApiKey"] = _doveadmKey,
            ["Broker:Dovecot:Policy:FailureThreshold"] = PolicyThreshold.ToString(CultureInfo.InvariantCulture),
            ["Broker:Dovecot:Policy:Window"] = "00:10:00",
        });

        var dir = Root.TempDirectory("dovecot24-lua");
        var keyFile = Path.Combine(dir, "doveadm-api-key");
        await File.WriteAllTextAsync(keyFile, _doveadmKey);
        File.SetUnixFileMode(keyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        Lua = await StartAsync("lua", dir, [
            .. ShippedPassdbs.Lua(dir, Broker.GatewayUrl, Root),
            ("92-broker-doveadm.conf", InfraFiles.Render("infra/dovecot-2.4/conf.d/92-broker-doveadm.conf",
                ("/etc/dovecot/doveadm-api-key", Root.Inside(keyFile)), ("port = 8080", $"port = {doveadmPort.ToString(CultureInfo.InvariantCulture)}"))),
        ]);

        var oauthDir = Root.TempDirectory("dovecot24-oauth2");
        OAuth2 = await StartAsync("oauth2", oauthDir, ShippedPassdbs.OAuth2(oauthDir, Broker.GatewayUrl, Root));

        var policyDir = Root.TempDirectory("dovecot24-policy");
        Policy = await StartAsync("policy", policyDir, [
            .. ShippedPassdbs.Lua(policyDir, Broker.GatewayUrl, Root),
            ("91-broker-policy.conf", InfraFiles.Render("infra/dovecot-2.4/conf.d/91-broker-policy.conf",
                ("http://127.0.0.1:5080", Broker.GatewayUrl), ("CHANGE-ME-broker-caller-key", BrokerApps.CallerKey),
                ("CHANGE-ME-random-nonce", Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16))))),
        ]);

        var nobody = $"http://127.0.0.1:{FreePort.Get().ToString(CultureInfo.InvariantCulture)}";
        _blackHole = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        _blackHole.Start();
        var hung = $"http://127.0.0.1:{((System.Net.IPEndPoint)_blackHole.LocalEndpoint).Port.ToString(CultureInfo.InvariantCulture)}";
        var d1 = Root.TempDirectory("dovecot24-lua-down");
        LuaBrokerDown = await StartAsync("lua-down", d1, ShippedPassdbs.Lua(d1, nobody, Root));
        var d2 = Root.TempDirectory("dovecot24-lua-hung");
        LuaBrokerHung = await StartAsync("lua-hung", d2, ShippedPassdbs.Lua(d2, hung, Root));
        var d3 = Root.TempDirectory("dovecot24-oauth2-down");
        OAuth2BrokerDown = await StartAsync("oauth2-down", d3, ShippedPassdbs.OAuth2(d3, nobody, Root));
        var d4 = Root.TempDirectory("dovecot24-oauth2-hung");
        OAuth2BrokerHung = await StartAsync("oauth2-hung", d4, ShippedPassdbs.OAuth2(d4, hung, Root));

        await StartTlsAsync();
    }

    /// <summary>A gateway on HTTPS with a test CA's certificate (as MailLab's), the CA files inside the root.</summary>
    private async Task StartTlsAsync()
    {
        _certDir = Root.TempDirectory("dovecot24-certs");
        (_tlsGateway, var certs, var otherCa) = await MailLab.StartHttpsGatewayAsync(Broker, _certDir);
        var url = _tlsGateway.Address.ToString().TrimEnd('/');
        var d1 = Root.TempDirectory("dovecot24-tls");
        LuaTls = await StartAsync("lua-tls", d1, ShippedPassdbs.Lua(d1, url, Root, certs.CaPath));
        var d2 = Root.TempDirectory("dovecot24-wrongca");
        LuaWrongCa = await StartAsync("lua-wrongca", d2, ShippedPassdbs.Lua(d2, url, Root, otherCa.CaPath));
        var d3 = Root.TempDirectory("dovecot24-oauth2-tls");
        OAuth2Tls = await StartAsync("oauth2-tls", d3, ShippedPassdbs.OAuth2(d3, url, Root, certs.CaPath));
    }

    private async Task<DovecotServer> StartAsync(string name, string dir, IEnumerable<(string, string)> snippets)
    {
        var server = await DovecotServer.StartAsync("24-" + name, snippets, dir: dir, root: Root);
        _servers.Add(server);
        return server;
    }

    public async Task<string> IssueAsync(string user, string scopes = "imap,submission") =>
        (await AppPasswords.IssueAsync(user, "test device", scopes.Split(','), null)).Secret;

    /// <summary>What a 2.4 Dovecot with this passdb logs when Broker answers "temporary failure" (503).</summary>
    public static string BrokerUndecidedLogLine(string passdb) =>
        passdb == "lua" ? "broker: HTTP status 503" : "Password grant failed: 503 Service Unavailable";

    /// <summary>The auth process's lines about <paramref name="user"/>, one per line.</summary>
    public static string AuthLogLines(DovecotServer dovecot, string user) =>
        string.Join('\n', dovecot.Log.Split('\n').Where(l => l.Contains("auth", StringComparison.Ordinal) && l.Contains(user, StringComparison.Ordinal)));

    /// <inheritdoc cref="BrokerUnderTest.WithRedisDownAsync"/>
    public Task WithRedisDownAsync(Func<Task> whileDown) => Broker.WithRedisDownAsync(whileDown);

    public async Task DisposeAsync()
    {
        foreach (var s in _servers)
        {
            await s.DisposeAsync();
        }

        if (_tlsGateway is not null)
        {
            await _tlsGateway.DisposeAsync();
        }

        if (Broker is not null)
        {
            await Broker.DisposeAsync();
        }

        if (_certDir is not null)
        {
            Shell.DeleteQuietly(_certDir);
        }

        Dispose();
    }

    public void Dispose()
    {
        _blackHole?.Stop();
        _blackHole?.Dispose();
    }
}

[CollectionDefinition(Name)]
public sealed class Dovecot24LabDefinition : ICollectionFixture<Dovecot24Lab>
{
    public const string Name = "dovecot 2.4 lab";
}
