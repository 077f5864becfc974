using System.Globalization;
using Broker.Core.AppPasswords;
using Broker.Testing;

namespace Broker.MailServers.Tests.Infrastructure;

/// <summary>
/// The protocols beyond IMAP, each with the real program: one Dovecot with the shipped Lua passdb
/// serving POP3, its own submission service and LMTP; a Postfix relay that Dovecot's submission
/// hands mail to (delivering <see cref="Domain"/> back into that Dovecot over LMTP); and nginx's SMTP
/// proxy (infra/nginx/mail-smtp.conf) in front of a Postfix that trusts it for XCLIENT
/// (infra/postfix/master.cf.nginx-backend), that Postfix's SASL going through the same Dovecot.
/// Separate from <see cref="MailLab"/> so adding protocols here never changes what the IMAP tests run against.
/// </summary>
public sealed class MailProtocolsLab : IAsyncLifetime
{
    /// <summary>The domain the relay delivers into <see cref="Dovecot"/>; everything else is bounced by the relay.</summary>
    public const string Domain = "example.test";

    public BrokerUnderTest Broker { get; private set; } = null!;

    /// <summary>Lua passdb; protocols imap, pop3, submission, lmtp; Postfix SASL socket.</summary>
    public DovecotServer Dovecot { get; private set; } = null!;

    public int Pop3Port { get; private set; }

    public int SubmissionPort { get; private set; }

    /// <summary>Where Dovecot's submission service relays (submission_relay_host/port).</summary>
    public RelayPostfixServer Relay { get; private set; } = null!;

    /// <summary>Postfix with the shipped submission files plus the nginx backend service.</summary>
    public PostfixServer NginxBackend { get; private set; } = null!;

    /// <summary>The nginx backend service's port (Broker:Nginx:Backends:smtp).</summary>
    public int NginxBackendPort { get; private set; }

    public NginxServer Nginx { get; private set; } = null!;

    public AppPasswordService AppPasswords => Broker.Validation.AppPasswords;

    public async Task InitializeAsync()
    {
        NginxBackendPort = FreePort.Get();
        Broker = await BrokerUnderTest.StartAsync(new Dictionary<string, string?>
        {
            ["Broker:Nginx:Backends:smtp"] = $"127.0.0.1:{NginxBackendPort.ToString(CultureInfo.InvariantCulture)}",
            ["Broker:Nginx:FailureWaitSeconds"] = "0",
        });

        var lmtpPort = FreePort.Get();
        Relay = await RelayPostfixServer.StartAsync(Domain, lmtpPort);

        NginxBackend = await PostfixServer.PrepareAsync();
        Pop3Port = FreePort.Get();
        SubmissionPort = FreePort.Get();
        var dir = Shell.TempDirectory("dovecot-protocols");
        // The admin's own protocol settings; Broker's part is the shipped 90-broker.conf + broker.lua.
        var protocols = $$"""
            protocols = imap pop3 submission lmtp
            hostname = broker-test.localdomain
            submission_relay_host = 127.0.0.1
            submission_relay_port = {{Relay.SmtpPort.ToString(CultureInfo.InvariantCulture)}}
            service pop3-login {
              inet_listener pop3 {
                address = 127.0.0.1
                port = {{Pop3Port.ToString(CultureInfo.InvariantCulture)}}
              }
              inet_listener pop3s {
                port = 0
              }
            }
            service submission-login {
              inet_listener submission {
                address = 127.0.0.1
                port = {{SubmissionPort.ToString(CultureInfo.InvariantCulture)}}
              }
            }
            service lmtp {
              inet_listener lmtp {
                address = 127.0.0.1
                port = {{lmtpPort.ToString(CultureInfo.InvariantCulture)}}
              }
            }
            """;
        Dovecot = await DovecotServer.StartAsync("protocols", [
            .. ShippedPassdbs.Lua(dir, Broker.GatewayUrl),
            ("10-postfix-auth.conf", InfraFiles.Render("infra/postfix/dovecot-10-postfix-auth.conf", ("/var/spool/postfix/private/auth", NginxBackend.SaslSocketPath))),
        ], extraMain: protocols, dir: dir, allowAllUsers: true);
        foreach (var port in new[] { Pop3Port, SubmissionPort, lmtpPort })
        {
            await FreePort.WaitListeningAsync(port, TimeSpan.FromSeconds(15));
        }

        var backendPort = NginxBackendPort.ToString(CultureInfo.InvariantCulture);
        await NginxBackend.StartAsync(InfraFiles.Render("infra/postfix/master.cf.nginx-backend", ("127.0.0.1:10587 inet", $"127.0.0.1:{backendPort} inet")));
        await FreePort.WaitListeningAsync(NginxBackendPort, TimeSpan.FromSeconds(15));

        Nginx = await NginxServer.StartAsync($"{Broker.GatewayUrl}/v1/nginx/auth", BrokerApps.CallerKey, smtp: true);
    }

    /// <summary>Issues an app password and returns the secret as a user would type it.</summary>
    public async Task<string> IssueAsync(string user, string scopes) =>
        (await AppPasswords.IssueAsync(user, "test device", scopes.Split(','), null)).Secret;

    /// <summary>
    /// The secret with its last symbol changed, so it is certainly wrong (replacing it by a fixed
    /// letter would leave it valid whenever it already ended in that letter: 1 run in 32).
    /// </summary>
    public static string Mistyped(string secret) => secret[..^1] + (secret[^1] == 'x' ? "y" : "x");

    /// <inheritdoc cref="BrokerUnderTest.WithRedisDownAsync"/>
    public Task WithRedisDownAsync(Func<Task> whileDown) => Broker.WithRedisDownAsync(whileDown);

    /// <summary>Everything the servers logged, for assertion messages.</summary>
    public string Logs => $"Dovecot:\n{Dovecot?.Log}\nRelay Postfix:\n{Relay?.Log}\nnginx backend Postfix:\n{NginxBackend?.Log}\nnginx:\n{Nginx?.ErrorLog}";

    public async Task DisposeAsync()
    {
        foreach (var d in new IAsyncDisposable?[] { Nginx, NginxBackend, Dovecot, Relay, Broker })
        {
            if (d is not null)
            {
                await d.DisposeAsync();
            }
        }
    }
}

[CollectionDefinition(Name)]
public sealed class MailProtocolsLabDefinition : ICollectionFixture<MailProtocolsLab>
{
    public const string Name = "mail protocols lab";
}
