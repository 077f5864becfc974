using System.Diagnostics;
using System.Globalization;
using Broker.Testing;

namespace Broker.MailServers.Tests.Infrastructure;

/// <summary>
/// A real Dovecot in its own directory: own base_dir, state_dir, config, log and mail, IMAP on a free
/// loopback port, unprivileged users as a root-started Dovecot needs them. Debian 12's 2.3 from the
/// host, or Debian 13's 2.4 from a <see cref="DovecotRoot"/> with chroot (its own config syntax).
/// The caller supplies conf.d-style snippets (rendered from infra/); this class writes only what
/// the admin's own dovecot.conf would hold.
/// </summary>
public sealed class DovecotServer : IAsyncDisposable
{
    private Process? _process;

    private DovecotServer(string name, string dir, int imapPort, DovecotRoot? root)
    {
        Name = name;
        Dir = dir;
        ImapPort = imapPort;
        Root = root;
    }

    /// <summary>The Dovecot 2.4 root this instance runs in, or null for the host's Dovecot 2.3.</summary>
    public DovecotRoot? Root { get; }

    public string Name { get; }

    public string Dir { get; }

    public int ImapPort { get; }

    public string ConfigPath => Path.Combine(Dir, "dovecot.conf");

    public string LogPath => Path.Combine(Dir, "dovecot.log");

    /// <summary>Dovecot's auth-client socket, for measuring the auth step alone.</summary>
    public string AuthClientSocket => Path.Combine(Dir, "run", "auth-client");

    public string Log => File.Exists(LogPath) ? File.ReadAllText(LogPath) : string.Empty;

    /// <param name="name">Instance name (logs, directory).</param>
    /// <param name="snippets">conf.d files (name, rendered text), included in order.</param>
    /// <param name="extraMain">Test-only main settings (e.g. a userdb), appended to dovecot.conf.</param>
    /// <param name="dir">Directory to use (created by the caller when files must be placed first).</param>
    /// <param name="allowAllUsers">
    /// Set <c>allow_all_users=yes</c> on the static userdb. Needed for user lookups without a login
    /// (LMTP delivery, doveadm user): without it the static userdb asks the passdb, and Broker's Lua
    /// passdb only verifies passwords (no <c>auth_passdb_lookup</c>).
    /// </param>
    /// <param name="root">Run Dovecot 2.4 from this root (config in 2.4 syntax; <paramref name="dir"/> inside the root).</param>
    public static async Task<DovecotServer> StartAsync(string name, IEnumerable<(string Name, string Text)> snippets, string? extraMain = null, string? dir = null, bool allowAllUsers = false, DovecotRoot? root = null)
    {
        dir ??= root is null ? Shell.TempDirectory("dovecot-" + name) : root.TempDirectory("dovecot-" + name);
        var server = new DovecotServer(name, dir, FreePort.Get(), root);
        if (root is null)
        {
            server.WriteConfig(snippets, extraMain, allowAllUsers);
        }
        else
        {
            server.WriteConfig24(snippets, extraMain, allowAllUsers);
        }

        await server.StartProcessAsync();
        return server;
    }

    /// <summary>The path Dovecot itself uses for a file of this instance (differs from the host path in a chroot).</summary>
    private string Seen(string hostPath) => Root is null ? hostPath : Root.Inside(hostPath);

    /// <summary>Runs the dovecot binary of this instance's version (through chroot for 2.4).</summary>
    private (string Program, List<string> Args) DovecotCommand(params string[] args) =>
        Root is null
            ? (Tool.Find("dovecot"), [.. args])
            : (Tool.Find("chroot"), [Root.Path, "/usr/sbin/dovecot", .. args]);

    /// <summary>The same admin-side settings as <see cref="WriteConfig"/>, in Dovecot 2.4's syntax.</summary>
    private void WriteConfig24(IEnumerable<(string Name, string Text)> snippets, string? extraMain, bool allowAllUsers)
    {
        var includes = WriteSnippets(snippets);
        var dir = Seen(Dir);
        var port = ImapPort.ToString(CultureInfo.InvariantCulture);
        File.WriteAllText(ConfigPath, $$"""
            # Written by the test: what an admin's own dovecot.conf holds (Debian 13's starts with the
            # two version lines). Broker's parts come from infra/dovecot-2.4/.
            dovecot_config_version = 2.4.0
            dovecot_storage_version = 2.4.0
            instance_name = broker-test-{{Name}}-{{Path.GetFileName(Dir)[^6..]}}
            base_dir = {{dir}}/run
            state_dir = {{dir}}/state
            protocols = imap
            listen = 127.0.0.1
            ssl = no
            # As for 2.3 (see WriteConfig): 127.0.0.0/24 is trusted, 127.0.1.0/24 plays the Internet.
            login_trusted_networks = 127.0.0.0/24
            default_internal_user = dovecot
            default_login_user = dovenull
            log_path = {{dir}}/dovecot.log
            auth_verbose = yes
            auth_failure_delay = 0
            # New in 2.4: temporary failures (Broker down) wait 2 s too; production keeps it.
            auth_internal_failure_delay = 0
            service anvil {
              unix_listener anvil-auth-penalty {
                mode = 0
              }
            }
            mail_driver = maildir
            mail_path = {{dir}}/mail/%{user | username}
            userdb static {
              fields {
                uid = 65534
                gid = 65534
                home = {{dir}}/mail/%{user | username}
              }
              allow_all_users = {{(allowAllUsers ? "yes" : "no")}}
            }
            service imap-login {
              inet_listener imap {
                listen = 127.0.0.1
                port = {{port}}
              }
              inet_listener imaps {
                port = 0
              }
            }
            {{string.Join('\n', includes)}}
            {{extraMain ?? string.Empty}}
            """);
    }

    /// <summary>The mail directory and the conf.d snippets; returns the <c>!include</c> lines, with the paths Dovecot sees.</summary>
    private List<string> WriteSnippets(IEnumerable<(string Name, string Text)> snippets)
    {
        var mail = Path.Combine(Dir, "mail");
        Directory.CreateDirectory(mail);
        // Mail processes run as nobody (uid 65534): Dovecot refuses to run them as root.
        File.SetUnixFileMode(mail, (UnixFileMode)0x1FF);
        Directory.CreateDirectory(Path.Combine(Dir, "conf.d"));
        var includes = new List<string>();
        foreach (var (file, text) in snippets)
        {
            var path = Path.Combine(Dir, "conf.d", file);
            File.WriteAllText(path, text);
            includes.Add($"!include {Seen(path)}");
        }

        return includes;
    }

    private void WriteConfig(IEnumerable<(string Name, string Text)> snippets, string? extraMain, bool allowAllUsers)
    {
        var includes = WriteSnippets(snippets);
        var mail = Path.Combine(Dir, "mail");
        var port = ImapPort.ToString(CultureInfo.InvariantCulture);
        var allowAll = allowAllUsers ? " allow_all_users=yes" : string.Empty;
        File.WriteAllText(ConfigPath, $$"""
            # Written by the test: what an admin's own dovecot.conf holds. Broker's parts come from infra/.
            instance_name = broker-test-{{Name}}-{{Path.GetFileName(Dir)[^6..]}}
            base_dir = {{Dir}}/run
            state_dir = {{Dir}}/state
            protocols = imap
            listen = 127.0.0.1
            ssl = no
            # Tests connect without TLS from several loopback addresses (127.0.0.77 plays a sprayer);
            # Broker's drop-ins pin disable_plaintext_auth = yes, which exempts only trusted networks.
            # 127.0.1.0/24 stays untrusted: a client there plays one on the Internet without TLS.
            login_trusted_networks = 127.0.0.0/24
            default_internal_user = dovecot
            default_login_user = dovenull
            log_path = {{LogPath}}
            auth_verbose = yes
            # Failures answer at once, so the suite stays fast; production keeps the default (2 s).
            auth_failure_delay = 0
            # Tests fail the same user from the same address many times; anvil's auth penalty (4-15 s per
            # IP+user after a failure) would make the suite crawl. Production keeps it (see docs/dovecot.md).
            service anvil {
              unix_listener anvil-auth-penalty {
                mode = 0
              }
            }
            mail_location = maildir:{{mail}}/%n
            userdb {
              driver = static
              args = uid=65534 gid=65534 home={{mail}}/%n{{allowAll}}
            }
            service imap-login {
              inet_listener imap {
                address = 127.0.0.1
                port = {{port}}
              }
              inet_listener imaps {
                port = 0
              }
            }
            {{string.Join('\n', includes)}}
            {{extraMain ?? string.Empty}}
            """);
    }

    private async Task StartProcessAsync()
    {
        var (program, args) = DovecotCommand("-F", "-c", Seen(ConfigPath));
        var psi = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        var errors = new System.Text.StringBuilder();
        _process = Process.Start(psi) ?? throw new InvalidOperationException("dovecot did not start.");
        _process.OutputDataReceived += (_, e) => { if (e.Data is not null) { lock (errors) { errors.AppendLine(e.Data); } } };
        _process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { lock (errors) { errors.AppendLine(e.Data); } } };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (true)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"dovecot exited at start ({_process.ExitCode}): {errors}\n{Log}");
            }

            try
            {
                await FreePort.WaitListeningAsync(ImapPort, TimeSpan.FromMilliseconds(200));
                return;
            }
            catch (System.Net.Sockets.SocketException) when (DateTime.UtcNow < deadline)
            {
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_process is { HasExited: false } p)
        {
            // "dovecot stop" ends the master and all its children cleanly; kill is the fallback.
            try
            {
                var (program, args) = DovecotCommand("-c", Seen(ConfigPath), "stop");
                await Shell.RunAsync(program, args, TimeSpan.FromSeconds(10));
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                await p.WaitForExitAsync(cts.Token);
            }
            catch (Exception ex) when (ex is TimeoutException or OperationCanceledException or InvalidOperationException)
            {
                p.Kill(entireProcessTree: true);
            }
        }

        _process?.Dispose();
        Shell.DeleteQuietly(Dir);
    }
}
