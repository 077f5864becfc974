// The suite drives Debian's Dovecot, Postfix and nginx; it runs on Linux only.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
