using Broker.Testing;

namespace Broker.MailServers.Tests.Infrastructure;

/// <summary>A throwaway CA and a server certificate it signed (CN/SAN localhost and 127.0.0.1), made with openssl.</summary>
public sealed class TestCertificates
{
    private TestCertificates(string dir) => Dir = dir;

    public string Dir { get; }

    public string CaPath => Path.Combine(Dir, "ca.pem");

    public string ServerCertPath => Path.Combine(Dir, "server.pem");

    public string ServerKeyPath => Path.Combine(Dir, "server.key");

    public static async Task<TestCertificates> CreateAsync(string dir, bool withServer = true)
    {
        Directory.CreateDirectory(dir);
        var certs = new TestCertificates(dir);
        var openssl = Tool.Find("openssl");
        var ec = new[] { "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes" };
        await Shell.RunCheckedAsync(openssl, ["req", "-x509", .. ec, "-keyout", Path.Combine(dir, "ca.key"), "-out", certs.CaPath, "-days", "1", "-subj", "/CN=Broker test CA"]);
        if (withServer)
        {
            var ext = Path.Combine(dir, "san.ext");
            await File.WriteAllTextAsync(ext, "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
            await Shell.RunCheckedAsync(openssl, ["req", .. ec, "-keyout", certs.ServerKeyPath, "-out", Path.Combine(dir, "server.csr"), "-subj", "/CN=localhost"]);
            await Shell.RunCheckedAsync(openssl, ["x509", "-req", "-in", Path.Combine(dir, "server.csr"), "-CA", certs.CaPath, "-CAkey", Path.Combine(dir, "ca.key"),
                "-CAcreateserial", "-out", certs.ServerCertPath, "-days", "1", "-extfile", ext]);
        }

        return certs;
    }
}
