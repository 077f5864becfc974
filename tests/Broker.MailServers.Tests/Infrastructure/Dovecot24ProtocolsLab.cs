using System.Globalization;
using Broker.Core.AppPasswords;
using Broker.Testing;

namespace Broker.MailServers.Tests.Infrastructure;

/// <summary>
/// What <see cref="MailProtocolsLab"/> and <see cref="MailLab"/>'s Postfix are for 2.3, on Debian 13's
/// Dovecot 2.4 (chroot into a <see cref="DovecotRoot"/>) with the shipped infra/dovecot-2.4/ Lua
/// drop-in: one Dovecot serving POP3, its own submission service and LMTP, and the Postfix SASL
/// socket (infra/postfix/dovecot-10-postfix-auth.conf unchanged but for the path); a Postfix relay
/// that the submission service hands mail to (delivering <see cref="MailProtocolsLab.Domain"/> back
/// into that Dovecot over LMTP); the host's Postfix (Debian 12's 3.7) with the shipped submission
/// files, authenticating through that socket; and a second Dovecot with POP3 and submission pointed
/// at an address where no Broker listens.
/// </summary>
public sealed class Dovecot24ProtocolsLab : IAsyncLifetime
{
    public DovecotRoot Root { get; private set; } = null!;

    public BrokerUnderTest Broker { get; private set; } = null!;

    /// <summary>Lua passdb; protocols imap, pop3, submission, lmtp; Postfix SASL socket.</summary>
    public DovecotServer Dovecot { get; private set; } = null!;

    public int Pop3Port { get; private set; }

    public int SubmissionPort { get; private set; }

    /// <summary>Lua passdb pointed at a port where nothing listens; protocols imap, pop3, submission.</summary>
    public DovecotServer BrokerDown { get; private set; } = null!;

    public int BrokerDownPop3Port { get; private set; }

    public int BrokerDownSubmissionPort { get; private set; }

    /// <summary>Where the submission service relays (submission_relay_host/port).</summary>
    public RelayPostfixServer Relay { get; private set; } = null!;

    /// <summary>Host Postfix with infra/postfix/main.cf.broker + master.cf.broker, SASL through <see cref="Dovecot"/>.</summary>
    public PostfixServer Postfix { get; private set; } = null!;

    public AppPasswordService AppPasswords => Broker.Validation.AppPasswords;

    public async Task InitializeAsync()
    {
        // Fails (never skips) with the command that builds or refreshes the root.
        Root = DovecotRoot.Trixie();
        // The shipped socket drop-in says user = postfix: chrooted Dovecot looks that name up in the root.
        await Root.AddHostAccountAsync("postfix");

        Broker = await BrokerUnderTest.StartAsync();
        var lmtpPort = FreePort.Get();
        Relay = await RelayPostfixServer.StartAsync(MailProtocolsLab.Domain, lmtpPort);

        // Postfix's queue directory inside the root: Dovecot creates the socket at the path it sees
        // (/tmp/…/queue/private/auth), Postfix opens private/auth relative to its queue directory.
        Postfix = await PostfixServer.PrepareAsync(Root.TempDirectory("postfix"));
        Pop3Port = FreePort.Get();
        SubmissionPort = FreePort.Get();
        var dir = Root.TempDirectory("dovecot24-protocols");
        Dovecot = await DovecotServer.StartAsync("24-protocols", [
            .. ShippedPassdbs.Lua(dir, Broker.GatewayUrl, Root),
            ("10-postfix-auth.conf", InfraFiles.Render("infra/postfix/dovecot-10-postfix-auth.conf", ("/var/spool/postfix/private/auth", Root.Inside(Postfix.SaslSocketPath)))),
        ], extraMain: Protocols(Pop3Port, SubmissionPort, lmtpPort), dir: dir, allowAllUsers: true, root: Root);
        foreach (var port in new[] { Pop3Port, SubmissionPort, lmtpPort })
        {
            await FreePort.WaitListeningAsync(port, TimeSpan.FromSeconds(15));
        }

        await Postfix.StartAsync();

        BrokerDownPop3Port = FreePort.Get();
        BrokerDownSubmissionPort = FreePort.Get();
        var downDir = Root.TempDirectory("dovecot24-protocols-down");
        BrokerDown = await DovecotServer.StartAsync(
            "24-protocols-down",
            ShippedPassdbs.Lua(downDir, $"http://127.0.0.1:{FreePort.Get().ToString(CultureInfo.InvariantCulture)}", Root),
            extraMain: Protocols(BrokerDownPop3Port, BrokerDownSubmissionPort, lmtpPort: null),
            dir: downDir,
            root: Root);
        foreach (var port in new[] { BrokerDownPop3Port, BrokerDownSubmissionPort })
        {
            await FreePort.WaitListeningAsync(port, TimeSpan.FromSeconds(15));
        }
    }

    /// <summary>The admin's own protocol settings, in 2.4 syntax (a listener's address is "listen").</summary>
    private string Protocols(int pop3Port, int submissionPort, int? lmtpPort)
    {
        var lmtp = lmtpPort is { } p
            ? $$"""
                service lmtp {
                  inet_listener lmtp {
                    listen = 127.0.0.1
                    port = {{p.ToString(CultureInfo.InvariantCulture)}}
                  }
                }
                """
            : string.Empty;
        return $$"""
            protocols = imap pop3 submission{{(lmtpPort is null ? string.Empty : " lmtp")}}
            hostname = broker-test.localdomain
            submission_relay_host = 127.0.0.1
            submission_relay_port = {{Relay.SmtpPort.ToString(CultureInfo.InvariantCulture)}}
            service pop3-login {
              inet_listener pop3 {
                listen = 127.0.0.1
                port = {{pop3Port.ToString(CultureInfo.InvariantCulture)}}
              }
              inet_listener pop3s {
                port = 0
              }
            }
            service submission-login {
              inet_listener submission {
                listen = 127.0.0.1
                port = {{submissionPort.ToString(CultureInfo.InvariantCulture)}}
              }
              inet_listener submissions {
                port = 0
              }
            }
            {{lmtp}}
            """;
    }

    /// <summary>Issues an app password and returns the secret as a user would type it.</summary>
    public async Task<string> IssueAsync(string user, string scopes) =>
        (await AppPasswords.IssueAsync(user, "test device", scopes.Split(','), null)).Secret;

    /// <inheritdoc cref="BrokerUnderTest.WithRedisDownAsync"/>
    public Task WithRedisDownAsync(Func<Task> whileDown) => Broker.WithRedisDownAsync(whileDown);

    /// <summary>Everything the servers logged, for assertion messages.</summary>
    public string Logs => $"Dovecot 2.4:\n{Dovecot?.Log}\nRelay Postfix:\n{Relay?.Log}\nSASL Postfix:\n{Postfix?.Log}";

    public async Task DisposeAsync()
    {
        // Postfix before the Dovecot whose socket it uses; the queue directories go with their servers.
        foreach (var d in new IAsyncDisposable?[] { Postfix, Dovecot, BrokerDown, Relay, Broker })
        {
            if (d is not null)
            {
                await d.DisposeAsync();
            }
        }
    }
}

[CollectionDefinition(Name)]
public sealed class Dovecot24ProtocolsLabDefinition : ICollectionFixture<Dovecot24ProtocolsLab>
{
    public const string Name = "dovecot 2.4 protocols lab";
}
