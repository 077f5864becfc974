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

    /// <summary>
    /// The key for "one client host": an IPv4 address as it is (mapped IPv6 forms unwrapped), an
    /// IPv6 address as its /64, since one host usually owns a whole /64.
    /// </summary>
    public static string Host(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6)
        {
            return address.MapToIPv4().ToString();
        }

        if (address.AddressFamily == AddressFamily.InterNetworkV6)
        {
            var bytes = address.GetAddressBytes();
            Array.Clear(bytes, 8, 8);
            return new IPAddress(bytes) + "/64";
        }

        return address.ToString();
    }

    /// <summary>
    /// The key a per-client rate limit counts under (the gateway's for <c>/v1</c>, the portal's for
    /// sign-in forms): <see cref="Host"/>, or <c>unknown</c> for a request without a client address.
    /// </summary>
    public static string RateLimitKey(IPAddress? address) => address is null ? "unknown" : Host(address);

    /// <summary>IPv6 allow-list entries must have a prefix length divisible by this (keeps <see cref="Containing"/> short).</summary>
    public const int IPv6PrefixStep = 4;

    /// <summary>
    /// Every network that contains <paramref name="address"/> — all IPv4 prefix lengths, IPv6 prefix
    /// lengths in steps of 4 — as <c>,net/len,net/len,</c>. A normalised CIDR contains the address
    /// exactly when it appears in this list, which lets a Lua script test an allow-list with
    /// plain substring search.
    /// </summary>
    public static string? Containing(string? address)
    {
        if (string.IsNullOrEmpty(address) || !IPAddress.TryParse(address, out var ip))
        {
            return null;
        }

        if (ip.IsIPv4MappedToIPv6)
        {
            ip = ip.MapToIPv4();
        }

        var v4 = ip.AddressFamily == AddressFamily.InterNetwork;
        var max = v4 ? 32 : 128;
        var step = v4 ? 1 : IPv6PrefixStep;
        var sb = new System.Text.StringBuilder(",");
        for (var prefix = 0; prefix <= max; prefix += step)
        {
            sb.Append(Of(ip.ToString(), prefix, prefix)).Append(',');
        }

        return sb.ToString();
    }

    /// <summary>Parses and normalises (masks) a CIDR or single address for an allow-list; null when invalid.</summary>
    public static string? NormalizeCidr(string value)
    {
        value = value.Trim();
        var slash = value.IndexOf('/', StringComparison.Ordinal);
        var addressPart = slash < 0 ? value : value[..slash];
        if (!IPAddress.TryParse(addressPart, out var ip))
        {
            return null;
        }

        var v4 = ip.AddressFamily == AddressFamily.InterNetwork || ip.IsIPv4MappedToIPv6;
        var max = v4 ? 32 : 128;
        var prefix = max;
        if (slash >= 0 && (!int.TryParse(value[(slash + 1)..], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out prefix) || prefix > max))
        {
            return null;
        }

        if (!v4 && prefix % IPv6PrefixStep != 0)
        {
            return null;
        }

        return Of(addressPart, prefix, prefix);
    }
}
