using System.Security;
using System.Text;
using Microsoft.Extensions.Options;

namespace Broker.Portal.MailClients;

/// <summary>
/// The settings a mail client needs, as a person reads them and as Thunderbird autoconfig and
/// Apple configuration profiles carry them. Everything comes from <see cref="MailClientOptions"/>.
/// </summary>
public sealed class MailClientProfiles(IOptions<PortalOptions> options)
{
    private MailClientOptions Mail => options.Value.Mail;

    public MailClientOptions Settings => Mail;

    public string Domain => string.IsNullOrWhiteSpace(Mail.Domain) ? options.Value.PublicOriginUri.Host : Mail.Domain!;

    /// <summary>Thunderbird autoconfig (config-v1.1.xml). Usernames are the full address (%EMAILADDRESS%).</summary>
    public string ThunderbirdAutoconfig()
    {
        var d = X(Domain);
        return $"""
            <?xml version="1.0" encoding="UTF-8"?>
            <clientConfig version="1.1">
              <emailProvider id="{d}">
                <domain>{d}</domain>
                <displayName>{X(options.Value.ProductName)} mail</displayName>
                <displayShortName>{X(options.Value.ProductName)}</displayShortName>
                <incomingServer type="imap">
                  <hostname>{X(Mail.ImapHost)}</hostname>
                  <port>{Mail.ImapPort}</port>
                  <socketType>SSL</socketType>
                  <authentication>password-cleartext</authentication>
                  <username>%EMAILADDRESS%</username>
                </incomingServer>
                <incomingServer type="pop3">
                  <hostname>{X(Mail.Pop3Host)}</hostname>
                  <port>{Mail.Pop3Port}</port>
                  <socketType>SSL</socketType>
                  <authentication>password-cleartext</authentication>
                  <username>%EMAILADDRESS%</username>
                </incomingServer>
                <outgoingServer type="smtp">
                  <hostname>{X(Mail.SmtpHost)}</hostname>
                  <port>{Mail.SmtpPort}</port>
                  <socketType>SSL</socketType>
                  <authentication>password-cleartext</authentication>
                  <username>%EMAILADDRESS%</username>
                </outgoingServer>
                <outgoingServer type="smtp">
                  <hostname>{X(Mail.SmtpHost)}</hostname>
                  <port>{Mail.SubmissionPort}</port>
                  <socketType>STARTTLS</socketType>
                  <authentication>password-cleartext</authentication>
                  <username>%EMAILADDRESS%</username>
                </outgoingServer>
              </emailProvider>
            </clientConfig>
            """;
    }

    /// <summary>
    /// An Apple configuration profile (unsigned) with one IMAP account whose incoming and outgoing
    /// password is the app password, so iPhone and Mac Mail need no typing.
    /// </summary>
    public string AppleMobileConfig(string username, string appPasswordName, string secret, string appPasswordId)
    {
        var email = username.Contains('@', StringComparison.Ordinal) ? username : $"{username}@{Domain}";
        var rev = string.Join('.', Domain.Split('.').Reverse());
        var profileId = $"{rev}.broker.{appPasswordId}";
        return $"""
            <?xml version="1.0" encoding="UTF-8"?>
            <!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
            <plist version="1.0">
            <dict>
              <key>PayloadContent</key>
              <array>
                <dict>
                  <key>EmailAccountDescription</key><string>{X(appPasswordName)}</string>
                  <key>EmailAccountName</key><string>{X(username)}</string>
                  <key>EmailAccountType</key><string>EmailTypeIMAP</string>
                  <key>EmailAddress</key><string>{X(email)}</string>
                  <key>IncomingMailServerAuthentication</key><string>EmailAuthPassword</string>
                  <key>IncomingMailServerHostName</key><string>{X(Mail.ImapHost)}</string>
                  <key>IncomingMailServerPortNumber</key><integer>{Mail.ImapPort}</integer>
                  <key>IncomingMailServerUseSSL</key><true/>
                  <key>IncomingMailServerUsername</key><string>{X(username)}</string>
                  <key>IncomingPassword</key><string>{X(secret)}</string>
                  <key>OutgoingMailServerAuthentication</key><string>EmailAuthPassword</string>
                  <key>OutgoingMailServerHostName</key><string>{X(Mail.SmtpHost)}</string>
                  <key>OutgoingMailServerPortNumber</key><integer>{Mail.SmtpPort}</integer>
                  <key>OutgoingMailServerUseSSL</key><true/>
                  <key>OutgoingMailServerUsername</key><string>{X(username)}</string>
                  <key>OutgoingPassword</key><string>{X(secret)}</string>
                  <key>PayloadDisplayName</key><string>{X(appPasswordName)}</string>
                  <key>PayloadIdentifier</key><string>{X(profileId)}.mail</string>
                  <key>PayloadType</key><string>com.apple.mail.managed</string>
                  <key>PayloadUUID</key><string>{Guid.NewGuid().ToString().ToUpperInvariant()}</string>
                  <key>PayloadVersion</key><integer>1</integer>
                </dict>
              </array>
              <key>PayloadDisplayName</key><string>{X(options.Value.ProductName)} mail ({X(appPasswordName)})</string>
              <key>PayloadIdentifier</key><string>{X(profileId)}</string>
              <key>PayloadRemovalDisallowed</key><false/>
              <key>PayloadType</key><string>Configuration</string>
              <key>PayloadUUID</key><string>{Guid.NewGuid().ToString().ToUpperInvariant()}</string>
              <key>PayloadVersion</key><integer>1</integer>
            </dict>
            </plist>
            """;
    }

    public static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);

    private static string X(string? s) => SecurityElement.Escape(s ?? string.Empty);
}
