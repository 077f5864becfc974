using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Broker.Testing;

/// <summary>
/// Writes a small, deterministic country database in the MaxMind DB format (MMDB 2.0,
/// https://maxmind.github.io/MaxMind-DB/), so tests never need a downloaded GeoLite file: an IPv6
/// search tree with 24-bit records (IPv4 networks under ::/96), a data section of
/// <c>{"country": {"iso_code": "DE"}}</c> maps, and the metadata map after the
/// <c>\xAB\xCD\xEFMaxMind.com</c> marker. Networks may nest; a more specific one wins.
/// </summary>
public sealed class TestMmdbWriter
{
    private static readonly byte[] MetadataMarker = [0xAB, 0xCD, 0xEF, .. "MaxMind.com"u8];

    private readonly List<(byte[] Bits, int Prefix, string? Country)> _networks = [];

    /// <summary>The networks every GeoIP test shares (all public addresses, used only as strings).</summary>
    public static TestMmdbWriter Standard() => new TestMmdbWriter()
        .Add("81.2.69.0/24", "GB")
        .Add("5.9.0.0/16", "DE")
        .Add("5.9.100.0/24", "FR")
        .Add("2a01:4f8::/32", "DE")
        .Add("89.160.20.0/24", "SE")
        .Add("216.160.83.0/24", "US")
        // A record with no country (as GeoLite has for some anycast ranges): "unknown".
        .Add("1.1.1.0/24", null)
        // A database that (wrongly) places a private range in a country must not be believed.
        .Add("10.0.0.0/8", "DE");

    /// <summary>Adds a network (<c>address/prefix</c>) with its country, or null for a record without one.</summary>
    public TestMmdbWriter Add(string cidr, string? country)
    {
        var slash = cidr.IndexOf('/', StringComparison.Ordinal);
        var ip = IPAddress.Parse(cidr[..slash]);
        var prefix = int.Parse(cidr[(slash + 1)..], System.Globalization.CultureInfo.InvariantCulture);
        var bytes = ip.GetAddressBytes();
        if (ip.AddressFamily == AddressFamily.InterNetwork)
        {
            // IPv4 lives under ::/96 in an IPv6 tree, where readers look for it.
            bytes = [.. new byte[12], .. bytes];
            prefix += 96;
        }

        _networks.Add((bytes, prefix, country));
        return this;
    }

    /// <summary>Writes the database to <paramref name="path"/> (replacing it by rename, as an admin should).</summary>
    public void WriteTo(string path, DateTimeOffset? buildTime = null)
    {
        var temp = path + ".tmp";
        File.WriteAllBytes(temp, Build(buildTime));
        File.Move(temp, path, overwrite: true);
    }

    /// <summary>The database file's bytes. Same networks, same build time: same bytes.</summary>
    public byte[] Build(DateTimeOffset? buildTime = null)
    {
        // Data section: one record per distinct country (null: a record without "country").
        var data = new MemoryStream();
        var offsets = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var country in _networks.Select(n => n.Country ?? string.Empty).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal))
        {
            offsets[country] = (int)data.Length;
            if (country.Length == 0)
            {
                WriteMap(data, 1);
                WriteString(data, "continent");
                WriteMap(data, 1);
                WriteString(data, "code");
                WriteString(data, "EU");
            }
            else
            {
                WriteMap(data, 2);
                WriteString(data, "country");
                WriteMap(data, 1);
                WriteString(data, "iso_code");
                WriteString(data, country);
                WriteString(data, "registered_country");
                WriteMap(data, 1);
                WriteString(data, "iso_code");
                WriteString(data, country);
            }
        }

        // Search tree: less specific networks first, so a nested one splits its parent's leaf.
        var root = new Node();
        foreach (var (bits, prefix, country) in _networks.OrderBy(n => n.Prefix))
        {
            Insert(root, bits, prefix, new Leaf(offsets[country ?? string.Empty]));
        }

        var nodes = new List<Node>();
        Number(root, nodes);
        var nodeCount = nodes.Count;
        var file = new MemoryStream();
        foreach (var node in nodes)
        {
            WriteRecord(file, node.Left, nodeCount);
            WriteRecord(file, node.Right, nodeCount);
        }

        file.Write(new byte[16]);
        data.Position = 0;
        data.CopyTo(file);

        file.Write(MetadataMarker);
        WriteMap(file, 9);
        WriteString(file, "binary_format_major_version");
        WriteUInt16(file, 2);
        WriteString(file, "binary_format_minor_version");
        WriteUInt16(file, 0);
        WriteString(file, "build_epoch");
        WriteUInt64(file, (ulong)(buildTime ?? new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero)).ToUnixTimeSeconds());
        WriteString(file, "database_type");
        WriteString(file, "Broker-Test-Country");
        WriteString(file, "description");
        WriteMap(file, 1);
        WriteString(file, "en");
        WriteString(file, "Broker test country database");
        WriteString(file, "ip_version");
        WriteUInt16(file, 6);
        WriteString(file, "languages");
        WriteArray(file, 1);
        WriteString(file, "en");
        WriteString(file, "node_count");
        WriteUInt32(file, (uint)nodeCount);
        WriteString(file, "record_size");
        WriteUInt16(file, 24);
        return file.ToArray();
    }

    private sealed class Node
    {
        public object? Left { get; set; }

        public object? Right { get; set; }

        public int Number { get; set; }
    }

    private sealed record Leaf(int DataOffset);

    private static void Insert(Node root, byte[] address, int prefix, Leaf leaf)
    {
        var node = root;
        for (var depth = 0; depth < prefix; depth++)
        {
            var right = (address[depth / 8] & (0x80 >> (depth % 8))) != 0;
            if (depth == prefix - 1)
            {
                if ((right ? node.Right : node.Left) is Node)
                {
                    throw new InvalidOperationException("A network may not cover one added before it.");
                }

                Set(node, right, leaf);
                return;
            }

            var child = right ? node.Right : node.Left;
            if (child is not Node next)
            {
                // Empty, or the leaf of a less specific network: that one continues on both sides.
                next = new Node { Left = child, Right = child };
                Set(node, right, next);
            }

            node = next;
        }
    }

    private static void Set(Node node, bool right, object value)
    {
        if (right)
        {
            node.Right = value;
        }
        else
        {
            node.Left = value;
        }
    }

    private static void Number(Node node, List<Node> nodes)
    {
        node.Number = nodes.Count;
        nodes.Add(node);
        foreach (var child in new[] { node.Left, node.Right })
        {
            if (child is Node n)
            {
                Number(n, nodes);
            }
        }
    }

    private static void WriteRecord(Stream s, object? record, int nodeCount)
    {
        // A node number, node_count for "no data", or node_count + 16 + offset into the data section.
        var value = record switch
        {
            Node n => n.Number,
            Leaf l => nodeCount + 16 + l.DataOffset,
            _ => nodeCount,
        };
        s.WriteByte((byte)(value >> 16));
        s.WriteByte((byte)(value >> 8));
        s.WriteByte((byte)value);
    }

    private static void WriteControl(Stream s, int type, int size)
    {
        var extended = type > 7;
        var first = (extended ? 0 : type << 5) | (size < 29 ? size : size < 285 ? 29 : 30);
        s.WriteByte((byte)first);
        if (extended)
        {
            s.WriteByte((byte)(type - 7));
        }

        if (size >= 285)
        {
            var rest = size - 285;
            s.WriteByte((byte)(rest >> 8));
            s.WriteByte((byte)rest);
        }
        else if (size >= 29)
        {
            s.WriteByte((byte)(size - 29));
        }
    }

    private static void WriteString(Stream s, string value)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        WriteControl(s, 2, bytes.Length);
        s.Write(bytes);
    }

    private static void WriteMap(Stream s, int pairs) => WriteControl(s, 7, pairs);

    private static void WriteArray(Stream s, int items) => WriteControl(s, 11, items);

    private static void WriteUInt16(Stream s, ushort value) => WriteUnsigned(s, 5, value);

    private static void WriteUInt32(Stream s, uint value) => WriteUnsigned(s, 6, value);

    private static void WriteUInt64(Stream s, ulong value) => WriteUnsigned(s, 9, value);

    private static void WriteUnsigned(Stream s, int type, ulong value)
    {
        // Big-endian with leading zero bytes dropped; the size is the number of bytes.
        var bytes = new List<byte>();
        for (var v = value; v != 0; v >>= 8)
        {
            bytes.Insert(0, (byte)v);
        }

        WriteControl(s, type, bytes.Count);
        s.Write([.. bytes]);
    }
}

/// <summary>A test country database in a temporary file, deleted on dispose.</summary>
public sealed class TestCountryDatabase : IDisposable
{
    private TestCountryDatabase(string path) => Path = path;

    public string Path { get; }

    /// <summary>Writes <paramref name="writer"/> (default: <see cref="TestMmdbWriter.Standard"/>) to a new temporary file.</summary>
    public static TestCountryDatabase Create(TestMmdbWriter? writer = null)
    {
        var db = new TestCountryDatabase(System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"broker-country-{Guid.NewGuid():N}.mmdb"));
        (writer ?? TestMmdbWriter.Standard()).WriteTo(db.Path);
        return db;
    }

    public void Dispose()
    {
        try
        {
            File.Delete(Path);
        }
        catch (IOException)
        {
        }
    }
}
