using System.Globalization;
using System.Security.Cryptography;
using Broker.Core.AppPasswords;
using Broker.Gateway;
using Broker.Testing;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;

namespace Broker.MailServers.Tests.Infrastructure;

/// <summary>
/// Everything the mail-server tests share, started once: Broker (redis-server, validation, gateway),
/// Dovecot with the shipped Lua passdb + doveadm + Postfix SASL socket, Dovecot with the shipped
/// oauth2 alternative, Dovecot with the shipped policy config, Dovecot pointed at a Broker that is
/// down, Postfix submission, and nginx in front of a backend Dovecot that only knows the proxy secret.
/// </summary>
public sealed class MailLab : IAsyncLifetime, IDisposable
{
    public const string BackendSecret = "backend-secret-7f3a9c";
    public const int PolicyThreshold = 3;

    private readonly string _doveadmKey = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));

    /// <summary>The tests' country database: 5.9.0.0/16 is DE, 81.2.69.0/24 is GB (see <see cref="TestMmdbWriter.Standard"/>).</summary>
    private readonly TestCountryDatabase _countries = TestCountryDatabase.Create();

    /// <summary>Dovecot's doveadm_api_key, which Broker holds: must never appear in a log.</summary>
    public string DoveadmKey => _doveadmKey;

    public BrokerUnderTest Broker { get; private set; } = null!;

    /// <summary>The primary integration: infra/dovecot/conf.d/90-broker.conf + broker.lua (+ doveadm, Postfix socket).</summary>
    public DovecotServer Dovecot { get; private set; } = null!;

    /// <summary>infra/dovecot/conf.d/90-broker-oauth2.conf + dovecot-oauth2-broker.conf.ext.</summary>
    public DovecotServer OAuth2Dovecot { get; private set; } = null!;

    /// <summary>Lua passdb plus infra/dovecot/conf.d/91-broker-policy.conf.</summary>
    public DovecotServer PolicyDovecot { get; private set; } = null!;

    /// <summary>The shipped Lua passdb pointed at an address where no Broker listens.</summary>
    public DovecotServer BrokerDownDovecot { get; private set; } = null!;

    /// <summary>The shipped Lua passdb pointed at a listener that accepts and never answers (a hung Broker).</summary>
    public DovecotServer HungBrokerDovecot { get; private set; } = null!;

    /// <summary>The shipped oauth2 alternative pointed at an address where no Broker listens.</summary>
    public DovecotServer OAuth2BrokerDownDovecot { get; private set; } = null!;

    /// <summary>The shipped oauth2 alternative pointed at the hung listener.</summary>
    public DovecotServer OAuth2HungBrokerDovecot { get; private set; } = null!;

    /// <summary>The shipped Lua passdb calling Broker over HTTPS, trusting Broker's CA (ssl_client_ca_file).</summary>
    public DovecotServer TlsDovecot { get; private set; } = null!;

    /// <summary>The shipped Lua passdb calling Broker over HTTPS but trusting another CA.</summary>
    public DovecotServer WrongCaDovecot { get; private set; } = null!;

    /// <summary>A second gateway in front of the same validation role, on HTTPS.</summary>
    public Broker.Testing.RunningApp? TlsGateway { get; private set; }

    private string? _certDir;

    private System.Net.Sockets.TcpListener? _blackHole;

    /// <summary>A plain IMAP server behind nginx that knows only the proxy's backend secret.</summary>
    public DovecotServer BackendDovecot { get; private set; } = null!;

    public PostfixServer Postfix { get; private set; } = null!;

    public NginxServer Nginx { get; private set; } = null!;

    public AppPasswordService AppPasswords => Broker.Validation.AppPasswords;

    public async Task InitializeAsync()
    {
        BackendDovecot = await DovecotServer.StartAsync("backend", [("backend.conf", InfraFiles.Render("infra/nginx/backend-dovecot.conf", ("CHANGE-ME-backend-secret", BackendSecret)))]);

        var doveadmPort = FreePort.Get();
        Broker = await BrokerUnderTest.StartAsync(new Dictionary<string, string?>
        {
            ["Broker:Dovecot:Doveadm:Url"] = $"http://127.0.0.1:{doveadmPort.ToString(CultureInfo.InvariantCulture)}",
            ["Broker:Dovecot:Doveadm:ApiKey"] = _doveadmKey,
            ["Broker:Dovecot:Policy:FailureThreshold"] = PolicyThreshold.ToString(CultureInfo.InvariantCulture),
            ["Broker:Dovecot:Policy:Window"] = "00:10:00",
            ["Broker:Nginx:Backends:imap"] = $"127.0.0.1:{BackendDovecot.ImapPort.ToString(CultureInfo.InvariantCulture)}",
            ["Broker:Nginx:BackendPassword"] = BackendSecret,
            ["Broker:Nginx:FailureWaitSeconds"] = "0",
            ["Broker:GeoIp:CountryDatabase"] = _countries.Path,
        });

        Postfix = await PostfixServer.PrepareAsync();
        var dir = Shell.TempDirectory("dovecot-lua");
        // The key file as docs/dovecot.md creates it: root only, no trailing newline.
        var doveadmKeyFile = Path.Combine(dir, "doveadm-api-key");
        await File.WriteAllTextAsync(doveadmKeyFile, _doveadmKey);
        File.SetUnixFileMode(doveadmKeyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        Dovecot = await DovecotServer.StartAsync("lua", [
            .. ShippedPassdbs.Lua(dir, Broker.GatewayUrl),
            ("92-broker-doveadm.conf", InfraFiles.Render("infra/dovecot/conf.d/92-broker-doveadm.conf",
                ("/etc/dovecot/doveadm-api-key", doveadmKeyFile), ("port = 8080", $"port = {doveadmPort.ToString(CultureInfo.InvariantCulture)}"))),
            ("10-postfix-auth.conf", InfraFiles.Render("infra/postfix/dovecot-10-postfix-auth.conf", ("/var/spool/postfix/private/auth", Postfix.SaslSocketPath))),
        ], dir: dir);
        await Postfix.StartAsync();

        var oauthDir = Shell.TempDirectory("dovecot-oauth2");
        OAuth2Dovecot = await DovecotServer.StartAsync("oauth2", ShippedPassdbs.OAuth2(oauthDir, Broker.GatewayUrl), dir: oauthDir);

        var policyDir = Shell.TempDirectory("dovecot-policy");
        PolicyDovecot = await DovecotServer.StartAsync("policy", [
            .. ShippedPassdbs.Lua(policyDir, Broker.GatewayUrl),
            ("91-broker-policy.conf", InfraFiles.Render("infra/dovecot/conf.d/91-broker-policy.conf",
                ("http://127.0.0.1:5080", Broker.GatewayUrl), ("CHANGE-ME-broker-caller-key", BrokerApps.CallerKey),
                ("CHANGE-ME-random-nonce", Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16))))),
        ], dir: policyDir);

        var downDir = Shell.TempDirectory("dovecot-down");
        BrokerDownDovecot = await DovecotServer.StartAsync("down", ShippedPassdbs.Lua(downDir, $"http://127.0.0.1:{FreePort.Get().ToString(CultureInfo.InvariantCulture)}"), dir: downDir);

        _blackHole = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        _blackHole.Start();
        var hungDir = Shell.TempDirectory("dovecot-hung");
        HungBrokerDovecot = await DovecotServer.StartAsync("hung", ShippedPassdbs.Lua(hungDir, $"http://127.0.0.1:{((System.Net.IPEndPoint)_blackHole.LocalEndpoint).Port.ToString(CultureInfo.InvariantCulture)}"), dir: hungDir);

        var oauthDownDir = Shell.TempDirectory("dovecot-oauth2-down");
        OAuth2BrokerDownDovecot = await DovecotServer.StartAsync("oauth2-down", ShippedPassdbs.OAuth2(oauthDownDir, $"http://127.0.0.1:{FreePort.Get().ToString(CultureInfo.InvariantCulture)}"), dir: oauthDownDir);

        var oauthHungDir = Shell.TempDirectory("dovecot-oauth2-hung");
        OAuth2HungBrokerDovecot = await DovecotServer.StartAsync("oauth2-hung", ShippedPassdbs.OAuth2(oauthHungDir, $"http://127.0.0.1:{((System.Net.IPEndPoint)_blackHole.LocalEndpoint).Port.ToString(CultureInfo.InvariantCulture)}"), dir: oauthHungDir);

        await StartTlsAsync();

        Nginx = await NginxServer.StartAsync($"{Broker.GatewayUrl}/v1/nginx/auth", BrokerApps.CallerKey);
    }

    /// <summary>HTTPS between Dovecot and Broker: a gateway with a certificate from a test CA, Dovecot trusting that CA or another.</summary>
    private async Task StartTlsAsync()
    {
        _certDir = Shell.TempDirectory("certs");
        (TlsGateway, var certs, var otherCa) = await StartHttpsGatewayAsync(Broker, _certDir);
        var url = TlsGateway.Address.ToString().TrimEnd('/');
        var tlsDir = Shell.TempDirectory("dovecot-tls");
        TlsDovecot = await DovecotServer.StartAsync("tls", [.. ShippedPassdbs.Lua(tlsDir, url, caFile: certs.CaPath)], dir: tlsDir);
        var wrongDir = Shell.TempDirectory("dovecot-wrongca");
        WrongCaDovecot = await DovecotServer.StartAsync("wrongca", [.. ShippedPassdbs.Lua(wrongDir, url, caFile: otherCa.CaPath)], dir: wrongDir);
    }

    /// <summary>
    /// A gateway in front of <paramref name="broker"/>'s validation role on HTTPS, with a server
    /// certificate from a test CA (<c>Certs</c>) and a second CA that did not sign it (<c>OtherCa</c>),
    /// both made under <paramref name="certDir"/>.
    /// </summary>
    internal static async Task<(Broker.Testing.RunningApp Gateway, TestCertificates Certs, TestCertificates OtherCa)> StartHttpsGatewayAsync(BrokerUnderTest broker, string certDir)
    {
        var certs = await TestCertificates.CreateAsync(Path.Combine(certDir, "good"));
        var otherCa = await TestCertificates.CreateAsync(Path.Combine(certDir, "other"), withServer: false);
        var port = FreePort.Get().ToString(CultureInfo.InvariantCulture);
        var config = BrokerApps.BaseConfig(broker.Redis.Configuration);
        config["Broker:Gateway:ValidationDestinations:main"] = broker.Validation.Address.ToString();
        // Kestrel's standard endpoint settings, as docs/dovecot.md tells admins to use.
        config["Kestrel:Endpoints:Https:Url"] = $"https://127.0.0.1:{port}";
        config["Kestrel:Endpoints:Https:Certificate:Path"] = certs.ServerCertPath;
        config["Kestrel:Endpoints:Https:Certificate:KeyPath"] = certs.ServerKeyPath;
        return (await StartHttpsGatewayAsync(config), certs, otherCa);
    }

    /// <summary>
    /// The gateway role as BrokerApps composes it, plus Kestrel's HTTPS endpoint settings from
    /// configuration (the slim builder needs UseKestrelHttpsConfiguration for that).
    /// </summary>
    private static async Task<Broker.Testing.RunningApp> StartHttpsGatewayAsync(Dictionary<string, string?> config)
    {
        var builder = Microsoft.AspNetCore.Builder.WebApplication.CreateSlimBuilder();
        builder.Configuration.AddInMemoryCollection(config);
        builder.WebHost.UseKestrelHttpsConfiguration();
        builder.Services.AddBrokerGateway();
        var app = builder.Build();
        app.MapBrokerGateway();
        await app.StartAsync();
        return new Broker.Testing.RunningApp(app, new Uri(config["Kestrel:Endpoints:Https:Url"]!));
    }

    /// <inheritdoc cref="BrokerUnderTest.WithRedisDownAsync"/>
    public Task WithRedisDownAsync(Func<Task> whileDown) => Broker.WithRedisDownAsync(whileDown);

    /// <summary>Issues an app password and returns the secret as a user would type it.</summary>
    public async Task<string> IssueAsync(string user, string scopes = "imap,submission", TimeSpan? lifetime = null) =>
        (await AppPasswords.IssueAsync(user, "test device", scopes.Split(','), lifetime)).Secret;

    public async Task DisposeAsync()
    {
        foreach (var d in new IAsyncDisposable?[] { Nginx, Postfix, Dovecot, OAuth2Dovecot, PolicyDovecot, BrokerDownDovecot, HungBrokerDovecot, OAuth2BrokerDownDovecot, OAuth2HungBrokerDovecot, TlsDovecot, WrongCaDovecot, TlsGateway, BackendDovecot, Broker })
        {
            if (d is not null)
            {
                await d.DisposeAsync();
            }
        }

        Dispose();
        if (_certDir is not null)
        {
            Shell.DeleteQuietly(_certDir);
        }
    }

    public void Dispose()
    {
        _blackHole?.Stop();
        _blackHole?.Dispose();
        _countries.Dispose();
    }
}

[CollectionDefinition(Name)]
public sealed class MailLabDefinition : ICollectionFixture<MailLab>
{
    public const string Name = "mail lab";
}
