using Broker.Testing;

namespace Broker.MailServers.Tests.Infrastructure;

/// <summary>
/// Broker's shipped passdb drop-ins for one Dovecot version, rendered into an instance's directory:
/// 2.3's from <c>infra/dovecot</c> (no root), 2.4's from <c>infra/dovecot-2.4</c> (Dovecot runs in
/// a <see cref="DovecotRoot"/>, so the paths it reads are the ones it sees there). <c>broker.lua</c> is
/// the same file for both, written next to the config.
/// </summary>
public static class ShippedPassdbs
{
    private const string CaLine = "#ssl_client_ca_file = /etc/dovecot/broker-ca.pem";

    /// <summary>The folder of the drop-ins for this Dovecot.</summary>
    public static string Infra(DovecotRoot? root) => root is null ? "infra/dovecot" : "infra/dovecot-2.4";

    /// <summary>The Lua passdb (<c>90-broker.conf</c> and <c>broker.lua</c>) calling <paramref name="brokerUrl"/>, trusting <paramref name="caFile"/> when given.</summary>
    public static (string, string)[] Lua(string dir, string brokerUrl, DovecotRoot? root = null, string? caFile = null)
    {
        var script = Path.Combine(dir, "broker.lua");
        File.WriteAllText(script, InfraFiles.Render("infra/dovecot/broker.lua",
            ("http://127.0.0.1:5080", brokerUrl), ("CHANGE-ME-broker-caller-key", BrokerApps.CallerKey)));
        List<(string, string)> replacements = [("/etc/dovecot/broker.lua", Seen(root, script))];
        if (caFile is not null)
        {
            replacements.Add((CaLine, $"ssl_client_ca_file = {Seen(root, caFile)}"));
        }

        return [("90-broker.conf", InfraFiles.Render($"{Infra(root)}/conf.d/90-broker.conf", [.. replacements]))];
    }

    /// <summary>The oauth2 passdb (<c>90-broker-oauth2.conf</c> and the settings file it includes) calling <paramref name="brokerUrl"/>.</summary>
    public static (string, string)[] OAuth2(string dir, string brokerUrl, DovecotRoot? root = null, string? caFile = null)
    {
        var ext = Path.Combine(dir, "dovecot-oauth2-broker.conf.ext");
        List<(string, string)> replacements = [("http://127.0.0.1:5080", brokerUrl), ("CHANGE-ME-broker-caller-key", BrokerApps.CallerKey)];
        if (caFile is not null)
        {
            replacements.Add((CaLine, $"ssl_client_ca_file = {Seen(root, caFile)}"));
        }

        File.WriteAllText(ext, InfraFiles.Render($"{Infra(root)}/dovecot-oauth2-broker.conf.ext", [.. replacements]));
        return [("90-broker-oauth2.conf", InfraFiles.Render($"{Infra(root)}/conf.d/90-broker-oauth2.conf", ("/etc/dovecot/dovecot-oauth2-broker.conf.ext", Seen(root, ext))))];
    }

    private static string Seen(DovecotRoot? root, string path) => root?.Inside(path) ?? path;
}
