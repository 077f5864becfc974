using System.Net;
using System.Net.Sockets;

namespace Broker.Core.Throttling;

/// <summary>Maps a client address to the network it is counted under (default IPv4 /24, IPv6 /48).</summary>
public static class SourceNetwork
{
    /// <summary>The network as <c>address/prefix</c>, or null when the address is missing or not an IP.</summary>
    public static string? Of(string? address, int ipv4Prefix, int ipv6Prefix)
    {
        if (string.IsNullOrEmpty(address) || !IPAddress.TryParse(address, out var ip))
        {
            return null;
        }

        if (ip.IsIPv4MappedToIPv6)
        {
            ip = ip.MapToIPv4();
        }

        var prefix = ip.AddressFamily == AddressFamily.InterNetwork ? ipv4Prefix : ipv6Prefix;
        var bytes = ip.GetAddressBytes();
        for (var bit = prefix; bit < bytes.Length * 8; bit++)
        {
            bytes[bit / 8] &= (byte)~(0x80 >> (bit % 8));
        }

        return $"{new IPAddress(bytes)}/{prefix}";
    }
}
