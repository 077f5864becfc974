using System.Net;
using System.Net.Sockets;

namespace Broker.Testing;

/// <summary>Free TCP ports on loopback, for servers that cannot bind port 0 and report it.</summary>
/// <remarks>
/// Not from the kernel's ephemeral range (32768–60999 on Linux): every outgoing connection of the
/// suite takes a port from there too, so a port found free in it could be taken by a client socket
/// before the server under test bound it ("address already in use", seen in a full run). The range
/// used here is below it, and also leaves a Redis Cluster node's bus port (port + 10000) below it
/// and outside the range itself.
/// </remarks>
public static class FreePort
{
    private const int First = 15000;
    private const int Last = 21999;

    private static readonly HashSet<int> Given = [];

    public static int Get()
    {
        for (var attempt = 0; attempt < 1000; attempt++)
        {
            var port = Random.Shared.Next(First, Last + 1);
            lock (Given)
            {
                // Handed out once per process: the server it was for may not have bound it yet.
                if (!Given.Contains(port) && CanBind(port))
                {
                    Given.Add(port);
                    return port;
                }
            }
        }

        throw new InvalidOperationException($"no free loopback port between {First} and {Last}");
    }

    private static bool CanBind(int port)
    {
        try
        {
            using var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>Waits until something accepts TCP connections on the port.</summary>
    public static async Task WaitListeningAsync(int port, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync(IPAddress.Loopback, port);
                return;
            }
            catch (SocketException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(50);
            }
        }
    }
}
