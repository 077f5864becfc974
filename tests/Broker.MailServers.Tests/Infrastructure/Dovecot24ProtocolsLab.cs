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
/// files, authenticating through that socket; a second Dovecot with POP3 and submission through the
/// shipped oauth2 drop-in (relaying to the same Postfix, so its mail lands in the first one); and
/// one Dovecot per passdb with POP3 and submission pointed at an address where no Broker listens.
/// </summary>
public sealed class Dovecot24ProtocolsLab : IAsyncLifetime
{
    private readonly System.Collections.Concurrent.ConcurrentBag<DovecotServer> _others = [];

    public DovecotRoot Root { get; private set; } = null!;

    public BrokerUnderTest Broker { get; private set; } = null!;

    /// <summary>Lua passdb; protocols imap, pop3, submission, lmtp; Postfix SASL socket.</summary>
    public DovecotServer Dovecot { get; private set; } = null!;

    public int Pop3Port { get; private set; }

    public int SubmissionPort { get; private set; }

    /// <summary><see cref="Dovecot"/>'s POP3 and submission listeners.</summary>
    public Pop3AndSubmission Lua { get; private set; } = null!;

    /// <summary>infra/dovecot-2.4's oauth2 drop-in; protocols imap, pop3, submission.</summary>
    public Pop3AndSubmission OAuth2 { get; private set; } = null!;

    /// <summary>Lua passdb pointed at a port where nothing listens; protocols imap, pop3, submission.</summary>
    public Pop3AndSubmission LuaBrokerDown { get; private set; } = null!;

    /// <summary>oauth2 passdb pointed at a port where nothing listens; protocols imap, pop3, submission.</summary>
    public Pop3AndSubmission OAuth2BrokerDown { get; private set; } = null!;

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
        Lua = new Pop3AndSubmission(Dovecot, Pop3Port, SubmissionPort);

        var nobody = $"http://127.0.0.1:{FreePort.Get().ToString(CultureInfo.InvariantCulture)}";
        // Independent of each other: started together, the lab is ready a few seconds sooner.
        var others = await Task.WhenAll(
            StartPop3AndSubmissionAsync("oauth2", dir => ShippedPassdbs.OAuth2(dir, Broker.GatewayUrl, Root)),
            StartPop3AndSubmissionAsync("lua-down", dir => ShippedPassdbs.Lua(dir, nobody, Root)),
            StartPop3AndSubmissionAsync("oauth2-down", dir => ShippedPassdbs.OAuth2(dir, nobody, Root)));
        (OAuth2, LuaBrokerDown, OAuth2BrokerDown) = (others[0], others[1], others[2]);
    }

    /// <summary>The Dovecot with this passdb ("lua" or "oauth2") in front of the lab's Broker.</summary>
    public Pop3AndSubmission Passdb(string passdb) => passdb == "lua" ? Lua : OAuth2;

    /// <summary>The Dovecot with this passdb ("lua" or "oauth2") pointed at an address where no Broker listens.</summary>
    public Pop3AndSubmission BrokerDown(string passdb) => passdb == "lua" ? LuaBrokerDown : OAuth2BrokerDown;

    /// <summary>A Dovecot with POP3 and submission (relaying to <see cref="Relay"/>) and the passdb drop-ins <paramref name="passdb"/> renders into its directory.</summary>
    private async Task<Pop3AndSubmission> StartPop3AndSubmissionAsync(string name, Func<string, (string, string)[]> passdb)
    {
        var pop3Port = FreePort.Get();
        var submissionPort = FreePort.Get();
        var dir = Root.TempDirectory("dovecot24-protocols-" + name);
        var server = await DovecotServer.StartAsync("24-protocols-" + name, passdb(dir), extraMain: Protocols(pop3Port, submissionPort, lmtpPort: null), dir: dir, root: Root);
        _others.Add(server);
        foreach (var port in new[] { pop3Port, submissionPort })
        {
            await FreePort.WaitListeningAsync(port, TimeSpan.FromSeconds(15));
        }

        return new Pop3AndSubmission(server, pop3Port, submissionPort);
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
    public string Logs => $"Dovecot 2.4:\n{Dovecot?.Log}\nDovecot 2.4 (oauth2):\n{OAuth2?.Dovecot.Log}\nRelay Postfix:\n{Relay?.Log}\nSASL Postfix:\n{Postfix?.Log}";

    public async Task DisposeAsync()
    {
        // Postfix before the Dovecot whose socket it uses; the queue directories go with their servers.
        IAsyncDisposable?[] all = [Postfix, Dovecot, .. _others, Relay, Broker];
        foreach (var d in all)
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

/// <summary>One Dovecot 2.4 of <see cref="Dovecot24ProtocolsLab"/> and its POP3 and submission ports.</summary>
public sealed record Pop3AndSubmission(DovecotServer Dovecot, int Pop3Port, int SubmissionPort);
