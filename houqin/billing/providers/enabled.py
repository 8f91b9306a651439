"""The providers a site's settings enable, with their keys loaded (a key that does not load stops the
start with the file and the setting named, rather than failing on the first payment)."""

from __future__ import annotations

from houqin.billing.providers import PaymentProvider
from houqin.billing.providers.alipay import AlipayAccount, AlipayProvider
from houqin.billing.providers.rsa_keys import load_private_key, load_public_key
from houqin.billing.providers.sandbox import SandboxProvider
from houqin.billing.providers.wechat import WechatAccount, WechatPayProvider
from houqin.settings import Settings


def enabled_providers(settings: Settings) -> dict[str, PaymentProvider]:
    payments = settings.payments
    base = payments.public_url.rstrip("/")
    providers: dict[str, PaymentProvider] = {}
    if payments.sandbox:
        providers["sandbox"] = SandboxProvider(settings.sandbox_key())
    if payments.alipay is not None:
        alipay = payments.alipay
        providers["alipay"] = AlipayProvider(AlipayAccount(
            app_id=alipay.app_id,
            seller_id=alipay.seller_id,
            app_private_key=load_private_key(alipay.app_private_key_file, "payments.alipay.app_private_key_file"),
            alipay_public_key=load_public_key(alipay.alipay_public_key_file,
                                              "payments.alipay.alipay_public_key_file"),
            gateway=alipay.gateway,
            notify_url=f"{base}/api/v1/payments/alipay/notify",
        ))  # fmt: skip
    if payments.wechat is not None:
        wechat = payments.wechat
        providers["wechat"] = WechatPayProvider(WechatAccount(
            mchid=wechat.mchid,
            appid=wechat.appid,
            merchant_serial=wechat.merchant_serial,
            merchant_private_key=load_private_key(wechat.merchant_private_key_file,
                                                  "payments.wechat.merchant_private_key_file"),
            api_v3_key=wechat.api_v3_key.get_secret_value().encode(),
            platform_keys={serial: load_public_key(path, f"payments.wechat.platform_keys.{serial}")
                           for serial, path in wechat.platform_keys.items()},
            api_base=wechat.api_base.rstrip("/"),
            notify_url=f"{base}/api/v1/payments/wechat/notify",
        ))  # fmt: skip
    return providers
