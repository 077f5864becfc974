using MailKit;
using MailKit.Net.Imap;

namespace Broker.MailServers.Tests.Infrastructure;

/// <summary>Waits on a real server's side effects (a kicked session, a delivered message), shared by the 2.3 and 2.4 tests.</summary>
internal static class MailboxWaits
{
    /// <summary>
    /// True once the server has closed <paramref name="client"/>'s session (Dovecot sends "* BYE"
    /// after a doveadm kick, so the next command fails), false if it is still open after about 5 s.
    /// </summary>
    public static async Task<bool> SessionClosedAsync(ImapClient client)
    {
        for (var i = 0; i < 50; i++)
        {
            try
            {
                await client.NoOpAsync();
                await Task.Delay(100);
            }
            catch (Exception ex) when (ex is ImapProtocolException or IOException or ServiceNotConnectedException or ImapCommandException)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The subject of the first message in <paramref name="user"/>'s mailbox, read over POP3 once it has arrived (20 s at most).</summary>
    public static async Task<string> FirstSubjectAsync(int pop3Port, string user, string pop3Secret, Func<string> logs)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (true)
        {
            using var pop3 = await DovecotPop3Tests.ConnectAsync(pop3Port);
            await pop3.AuthenticateAsync(user, pop3Secret);
            if (await pop3.GetMessageCountAsync() > 0)
            {
                var message = await pop3.GetMessageAsync(0);
                await pop3.DisconnectAsync(true);
                return message.Subject ?? string.Empty;
            }

            await pop3.DisconnectAsync(true);
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException("the message did not arrive.\n" + logs());
            }

            await Task.Delay(200);
        }
    }
}
